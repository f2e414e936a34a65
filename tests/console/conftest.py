"""The console in a real browser: Debian's chromium driven by Playwright for Python, against the
embedded stack (every service, the proxy, real Spark) logging in through a real slapd.

Chromium is the system's (`/usr/bin/chromium`, from apt in ./dev); Playwright never downloads a
browser. Screenshots of the main pages go to docs/screenshots/ (or $SPAAS_SCREENSHOTS)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from spaas.stack import ROOT, Stack, free_port

from tests.e2e.conftest import Api, admin_client
from tests.ldap_fixture import Ldap

CHROMIUM = os.environ.get("SPAAS_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("SPAAS_SCREENSHOTS", str(ROOT / "docs" / "screenshots")))


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium (./dev bootstrap does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def console_stack(tmp_path_factory: pytest.TempPathFactory, ldap_server: Ldap) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("console-platform")
    stack = Stack(state_dir=state, api_port=free_port(), registry_port=free_port(),
                  layers_dir=Path.home() / ".cache" / "spaas" / "layers",
                  extra_env={"SPAAS_RESYNC_S": "1", "SPAAS_HISTORY_DEFAULT": "false", "SPAAS_LDAP_URL": ldap_server.url,
                             "SPAAS_LDAP_BASE_DN": ldap_server.base_dn, "SPAAS_CLUSTER_ADMIN_GROUPS": "platform-ops",
                             "SPAAS_FOLLOW_MAX_S": "20"})
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="session")
def admin_api(console_stack: Stack) -> Api:
    return admin_client(console_stack, url=console_stack.proxy_url)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Session:
    """One logged-in browser context."""

    def __init__(self, browser: object, base: str, ldap: Ldap, user: str, *, width: int = 1280, height: int = 800):
        self.base = base
        self.context = browser.new_context(viewport={"width": width, "height": height})  # type: ignore[attr-defined]
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.page.on("dialog", lambda d: d.accept())
        self.page.goto(base + "/platform/")
        assert "/platform/login" in self.page.url  # no session yet: sent to the login form
        self.page.get_by_label("User name").fill(user)
        self.page.get_by_label("Password").fill(ldap.passwords[user])
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url(base + "/platform/")

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def login(browser: object, console_stack: Stack, ldap_server: Ldap) -> Iterator[object]:
    sessions: list[Session] = []

    def open_as(user: str, **kw: int) -> Session:
        s = Session(browser, console_stack.proxy_url, ldap_server, user, **kw)
        sessions.append(s)
        return s

    yield open_as
    for s in sessions:
        s.close()
