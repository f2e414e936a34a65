"""Notebooks and the history server on the console's SIG page (issue 14), in Chromium through the
proxy, on the embedded stack with real Spark, JupyterLab from the SIG's environment and LDAP
logins. Independent of test_console_browser.py: it builds its own tenant `lab`.

    alice  user in lab: opens her JupyterLab from the SIG page, sees it running
    bob    user in lab: sees his own link, not alice's server
    opsadmin  cluster admin: lists the SIG's notebook servers and stops alice's
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from spaas.stack import Stack

from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e

T, S = "lab", "nb"
READY_S = 900  # a first build of the SIG's environment, with JupyterLab


@pytest.fixture(scope="module")
def lab_sig(admin_api: Api) -> str:
    admin_api.ok("POST", "/tenants", 201, json={"name": T})
    for user in ("alice", "bob"):
        admin_api.ok("PUT", f"/tenants/{T}/members/user/{user}", json={"roles": ["user"]})
    admin_api.ok("POST", f"/tenants/{T}/sigs", 202, json={
        "name": S, "spark_version": "3.5.9", "resources": {"cpu": 1, "memory_mb": 1024},
        "scaling": {"min_workers": 0, "max_workers": 1}, "history": {"enabled": True},
        "notebooks": {"jupyter": {"enabled": True, "idle_timeout_s": 3600}}})
    admin_api.wait_phase(T, S, "READY", timeout_s=READY_S)
    return f"/platform/t/{T}/sigs/{S}/"


def test_the_sig_page_links_each_users_jupyterlab_and_the_history_server(
        login, lab_sig: str, console_stack: Stack, admin_api: Api) -> None:
    s = login("alice")
    page = s.page
    page.get_by_role("link", name=T, exact=True).click()
    page.get_by_role("link", name=S, exact=True).click()
    expect(page.get_by_role("heading", name=f"SIG {S}")).to_be_visible()
    jupyter = page.get_by_role("link", name="Open JupyterLab")
    expect(jupyter).to_have_attribute("href", f"/sig/{T}/{S}/notebooks/alice/")
    expect(page.locator("#jupyter-state")).to_have_text("stopped")
    expect(page.get_by_text("Your notebook server is not running.")).to_be_visible()
    # The history server starts once the master is ready; the status block shows it without a reload.
    expect(page.locator("#history-state")).to_have_text("running", timeout=300_000)
    expect(page.locator("#sig-usage")).to_contain_text("1 history server")
    with page.context.expect_page() as opened:
        page.get_by_role("link", name="Open the history server").click()
    history = opened.value
    history.wait_for_load_state()
    assert history.url.startswith(console_stack.proxy_url + f"/sig/{T}/{S}/history/")
    # "running" comes from the history server's own registration; the proxy routes to it once the
    # scaler has verified its port and the proxy's table has been refreshed (a second or two later).
    deadline = time.monotonic() + 60
    while "History Server" not in history.title() and time.monotonic() < deadline:
        time.sleep(1)
        history.reload()
    expect(history).to_have_title(re.compile("History Server"))
    history.close()
    # Her own JupyterLab: a starting page that reloads itself, then the lab, under her path.
    with page.context.expect_page() as opened:
        jupyter.click()
    lab = opened.value
    expect(lab).to_have_title(re.compile("JupyterLab"), timeout=600_000)
    assert lab.url.startswith(console_stack.proxy_url + f"/sig/{T}/{S}/notebooks/alice/")
    lab.close()
    expect(page.locator("#jupyter-state")).to_have_text("running", timeout=120_000)
    expect(page.locator("#sig-usage")).to_contain_text("1 notebook servers")
    expect(page.get_by_role("button", name="Stop the server of alice")).to_be_visible(timeout=30_000)
    s.shot("sig-notebooks")

    bob = login("bob").page
    bob.goto(console_stack.proxy_url + lab_sig)
    expect(bob.get_by_role("link", name="Open JupyterLab")).to_have_attribute("href", f"/sig/{T}/{S}/notebooks/bob/")
    expect(bob.get_by_role("heading", name="Your notebook server")).to_be_visible()
    expect(bob.get_by_role("button", name="Stop the server of alice")).to_have_count(0)

    # The cluster admin lists the SIG's servers and stops alice's.
    admin = login("opsadmin").page
    admin.goto(console_stack.proxy_url + lab_sig)
    expect(admin.get_by_role("heading", name="Notebook servers")).to_be_visible()
    expect(admin.get_by_role("row", name=re.compile(r"^alice ready"))).to_be_visible()
    admin.get_by_role("button", name="Stop the server of alice").click()
    expect(admin.get_by_role("status")).to_contain_text("The notebook server of alice is stopping.")
    admin_api.wait("alice's server stopped", lambda: not [
        n for n in admin_api.ok("GET", f"/tenants/{T}/sigs/{S}/notebooks")["notebooks"] if n["user"] == "alice"], 180)
    expect(page.locator("#jupyter-state")).to_have_text("stopped", timeout=60_000)
