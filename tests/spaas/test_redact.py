"""`spaas.redact`: operator credentials never survive into text tenants read."""

from __future__ import annotations

import pytest

from spaas.redact import Redactor, redact_urls


@pytest.mark.parametrize(("text", "want"), [
    ("Looking in indexes: https://ci:s3cr%40t@pypi.corp/simple", "Looking in indexes: https://ci:***@pypi.corp/simple"),
    ("--index-url=https://__token__:pypi-AgEIcHlwaS5vcmc@host/simple/", "--index-url=https://__token__:***@host/simple/"),
    ("git+https://ghp_abcdef123456@github.com/x/y", "git+https://***@github.com/x/y"),
    ("http://u:p@h:3141/root/pypi/+simple/ and https://v:q@i/", "http://u:***@h:3141/root/pypi/+simple/ and https://v:***@i/"),
    ("https://pypi.org/simple/numpy/ no credentials", "https://pypi.org/simple/numpy/ no credentials"),
    ("mail me at a@b.c", "mail me at a@b.c"),
])
def test_url_userinfo_is_masked(text: str, want: str) -> None:
    assert redact_urls(text) == want


def test_known_secrets_are_masked_in_any_encoding() -> None:
    redact = Redactor(["registry-pw-42"], texts=["--index-url=https://ci:s3cr%40t!x@pypi.corp/simple", "--no-deps"])
    text = ("push failed: unauthorized for registry-pw-42; password s3cr@t!x or s3cr%40t!x or s3cr%40t%21x; "
            "url https://ci:s3cr%40t!x@pypi.corp/simple")
    out = redact(text)
    for secret in ("registry-pw-42", "s3cr@t!x", "s3cr%40t!x", "s3cr%40t%21x"):
        assert secret not in out
    assert out.count("***") == 5 and "https://ci:***@pypi.corp/simple" in out


def test_nothing_configured_leaves_ordinary_text_alone() -> None:
    assert Redactor()("Collecting numpy==1.26.4") == "Collecting numpy==1.26.4"
    assert Redactor(["", "ab"])("ab cd") == "ab cd"  # too short to mask everywhere
