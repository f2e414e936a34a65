"""Redaction of operator credentials from text that tenants can read (build logs, rendered
Dockerfiles, error messages).

Two rules, applied together by `Redactor`:
- the user-info of every URL: `https://user:pw@host` -> `https://user:***@host`, and a bare
  token `https://tok@host` -> `https://***@host` (pip index URLs, registry URLs), whatever
  setting or environment variable it came from;
- every known secret string, verbatim and percent-encoded/decoded: the registry password, and
  the passwords and tokens found in URLs of the settings handed to pip (`SPAAS_PIP_ARGS`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote

MASK = "***"
# scheme://[user[:password]]@  -- user-info stops at '/', '@' or whitespace.
URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:]*)(?::(?P<pw>[^/@\s]*))?@")
# Shorter strings are too likely to be ordinary words to be masked everywhere.
MIN_SECRET_LEN = 4


def redact_urls(text: str) -> str:
    """Mask the user-info of every URL in `text`."""

    def mask(m: re.Match[str]) -> str:
        if m.group("pw") is not None:
            return f"{m.group('scheme')}{m.group('user')}:{MASK}@"
        return f"{m.group('scheme')}{MASK}@"

    return URL_USERINFO.sub(mask, text)


def secrets_in_urls(texts: Iterable[str]) -> list[str]:
    """The passwords (or bare tokens) in the user-info of URLs in `texts`."""
    found = []
    for text in texts:
        for m in URL_USERINFO.finditer(text):
            found.append(m.group("pw") if m.group("pw") is not None else m.group("user"))
    return [s for s in found if s]


class Redactor:
    """`redactor(text)` masks URL user-info and every known secret in `text`."""

    def __init__(self, secrets: Iterable[str] = (), *, texts: Iterable[str] = ()) -> None:
        """`secrets`: strings to mask verbatim; `texts`: settings whose URL credentials are secrets too."""
        variants: set[str] = set()
        for secret in [*secrets, *secrets_in_urls(texts)]:
            for form in (secret, unquote(secret), quote(secret, safe=""), quote(unquote(secret), safe="")):
                if len(form) >= MIN_SECRET_LEN:
                    variants.add(form)
        self._secrets = sorted(variants, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = redact_urls(text)
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text
