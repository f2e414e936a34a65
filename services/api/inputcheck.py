"""One check of every request's text before anything else looks at it: control characters.

A NUL byte or another control character in the path, a query parameter (name or value) or any
JSON key is refused with 422 naming where it was; JSON string values may hold tab, newline and
carriage return (scripts, arguments) but no other control character. So no such character ever
reaches etcd keys, file names, LDAP filters or log lines, and none can turn into a 500.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from flask import Flask, request

from spaas.errors import Invalid

TEXT_OK = frozenset("\t\n\r")


# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F (tests/api pins it against
# unicodedata); with the line and paragraph separators. One regex search instead of a loop per character.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
CONTROL_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")  # tab, LF, CR allowed


def bad_char(text: str, *, allow: frozenset[str] = frozenset()) -> str | None:
    """The first control character in `text` (Unicode category Cc, or a line/paragraph
    separator) that is not in `allow`, or None."""
    if allow == TEXT_OK:
        found = CONTROL_NOT_TEXT.search(text)
        return found.group() if found else None
    for found in CONTROL.finditer(text):
        if found.group() not in allow:
            return found.group()
    return None


def _is_control(ch: str) -> bool:
    """The definition the regexes above implement (kept for the test that pins them)."""
    return unicodedata.category(ch) == "Cc" or ch in "\u2028\u2029"


def _refuse(ch: str, where: str, field: str) -> Invalid:
    return Invalid(f"{where} contains the control character U+{ord(ch):04X}; control characters are not accepted",
                   field=field)


def check_json(data: Any) -> None:
    """Walk a parsed JSON document (iteratively: it may be deep) and refuse control characters."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            ch = bad_char(value, allow=TEXT_OK)
            if ch:
                raise _refuse(ch, f"the value of {path or 'the body'}", path or "body")
        elif isinstance(value, dict):
            for key, item in value.items():
                sub = f"{path}.{key}" if path else str(key)
                ch = bad_char(str(key))
                if ch:
                    raise _refuse(ch, "a JSON key", path or "body")
                stack.append((item, sub))
        elif isinstance(value, list):
            stack.extend((item, f"{path}.{i}" if path else str(i)) for i, item in enumerate(value))


def _check() -> None:
    ch = bad_char(request.path)
    if ch:
        raise _refuse(ch, "the URL path", "path")
    for name, value in request.args.items(multi=True) if request.query_string else ():
        in_name = bad_char(name)
        ch = in_name or bad_char(value)
        if ch:
            raise _refuse(ch, "a query parameter", "query" if in_name else name)
    if request.method in ("POST", "PUT", "PATCH") and request.mimetype != "multipart/form-data":
        try:
            data = request.get_json(force=True, silent=True)
        except RecursionError:
            return  # json_body() answers 400 for it
        if data is not None:
            check_json(data)


def install(app: Flask) -> None:
    """Register the check; call before any other `before_request` hook (the guard's)."""
    app.before_request(_check)
