"""What a user sees in the console, in Chromium, through the proxy, on the embedded stack with real
Spark and LDAP logins. The tests run in file order and share the tenant `acme` built by the first.

    opsadmin  cluster admin (LDAP group platform-ops)  creates acme, grants groups roles
    alice     consumer_admin of acme (group acme-admins): SIG, applications, kill
    bob       user in acme (posixGroup acme-devs): no edit button
    dave      user in beta only (group beta-users): sees nothing of acme
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from spaas.stack import Stack

from tests.e2e.conftest import Api

pytestmark = pytest.mark.e2e

JOB = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("console-e2e").getOrCreate()
total = spark.sparkContext.parallelize(range(1, 1001), 4).map(lambda x: x * 2).sum()
print(f"RESULT total={total} args={sys.argv[1:]}")
spark.stop()
"""

LONG_JOB = """
import time
from pyspark.sql import SparkSession
spark = SparkSession.builder.appName("console-long").getOrCreate()
spark.range(0, 1000, 1, 2).count()
print("RESULT started", flush=True)
time.sleep(600)
"""

READY_S = 600_000  # ms: a first build of the SIG's environment


def test_cluster_admin_creates_a_tenant_and_grants_groups_roles(login, admin_api: Api) -> None:
    s = login("opsadmin")
    page = s.page
    expect(page.get_by_text("opsadmin (cluster admin)")).to_be_visible()
    page.get_by_label("Name").fill("acme")
    page.get_by_label("Max containers").fill("8")
    page.get_by_role("button", name="Create tenant").click()
    expect(page.get_by_role("heading", name="Tenant acme")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Tenant acme created.")
    for group, role in (("acme-admins", "consumer_admin"), ("acme-devs", "user")):
        page.get_by_label("Kind").select_option("group")
        page.get_by_label("Name", exact=True).fill(group)
        page.get_by_label(role, exact=True).check()
        page.get_by_role("button", name="Grant").click()
        expect(page.get_by_role("row", name=re.compile(f"group {group} {role}"))).to_be_visible()
    assert admin_api.ok("GET", "/tenants/acme")["quota"]["max_containers"] == 8
    page.get_by_label("Max containers").fill("12")
    page.get_by_role("button", name="Change quota").click()
    expect(page.get_by_role("status")).to_contain_text("Quota changed.")
    assert admin_api.ok("GET", "/tenants/acme")["quota"]["max_containers"] == 12
    s.shot("tenant")
    page.get_by_role("link", name="Tenants").click()
    expect(page.get_by_role("link", name="acme")).to_be_visible()
    s.shot("tenants")
    # A tenant of someone else, for the isolation test below.
    admin_api.ok("POST", "/tenants", 201, json={"name": "beta"})
    admin_api.ok("PUT", "/tenants/beta/members/group/beta-users", json={"roles": ["user"]})


def test_sig_form_shows_the_apis_422_next_to_the_field(login) -> None:
    page = login("alice").page
    page.goto(page.url + "t/acme/sigs/new")
    page.get_by_label("Name", exact=True).fill("bad")
    page.get_by_label("CPU cores").fill("4")
    page.get_by_label("CPU limit").fill("2")
    page.get_by_role("button", name="Create SIG").click()
    expect(page.locator("#err-resources").or_(page.locator("[id^=err-resources]"))).to_contain_text("max_cpu")


def test_sig_builds_to_ready_with_its_log_streaming_and_runs_a_pyspark_file(login, console_stack: Stack) -> None:
    s = login("alice")
    page = s.page
    page.get_by_role("link", name="acme").click()
    page.get_by_role("link", name="Create a SIG").click()
    page.get_by_label("Name", exact=True).fill("etl")
    page.get_by_label("Spark version").select_option("3.5.9")
    page.get_by_label("Key").first.fill("spark.executor.cores")
    page.get_by_label("Value").first.fill("1")
    page.get_by_label("CPU cores").fill("1")
    page.get_by_label("Memory (MiB)", exact=True).fill("1024")
    page.get_by_label("Minimum workers").fill("1")
    page.get_by_label("Maximum workers").fill("2")
    s.shot("sig-form")
    page.get_by_role("button", name="Create SIG").click()
    expect(page.get_by_role("heading", name="SIG etl")).to_be_visible()
    # The build log arrives over server-sent events while the phase moves on to READY.
    expect(page.locator("#build-log")).to_contain_text("build key", timeout=120_000)
    expect(page.locator("#phase")).to_have_text("READY", timeout=READY_S)
    expect(page.locator("#build-log")).to_contain_text("artifact ready")
    expect(page.locator("#build-log-state")).to_contain_text("complete (SUCCEEDED)")
    expect(page.locator("#workers")).to_have_text("1 / 1", timeout=120_000)
    # Upload and submit a PySpark file with arguments.
    page.get_by_label("Program file (.py or .jar)").set_input_files(
        {"name": "job.py", "mimeType": "text/x-python", "buffer": JOB.encode()})
    page.get_by_label("Name", exact=True).fill("first-job")
    page.get_by_label("Arguments (one per line)").fill("alpha\nbeta")
    page.get_by_role("button", name="Submit").click()
    expect(page.get_by_role("heading", name="Application first-job")).to_be_visible()
    expect(page.locator("#app-state")).to_have_text("FINISHED", timeout=300_000)
    expect(page.locator("#driver-log")).to_contain_text("RESULT total=1001000 args=['alpha', 'beta']", timeout=30_000)
    expect(page.locator("#driver-log-state")).to_contain_text("complete (FINISHED)")
    s.shot("application")
    # The list on the SIG page, refreshed without a reload, and the Spark master UI through the link.
    page.get_by_role("link", name="← SIG etl").click()
    expect(page.get_by_role("row", name=re.compile("first-job FINISHED alice"))).to_be_visible()
    with page.context.expect_page() as opened:
        page.get_by_role("link", name="Open the Spark master UI").click()
    ui = opened.value
    ui.wait_for_load_state()
    assert ui.url.startswith(console_stack.proxy_url + "/sig/acme/etl/")
    expect(ui.get_by_text("console-e2e").first).to_be_visible()
    ui.close()
    expect(page.get_by_role("img", name=re.compile("Workers and demand over time"))).to_be_visible()


def test_a_running_application_is_followed_and_killed(login) -> None:
    s = login("alice")
    page = s.page
    page.goto(page.url + "t/acme/sigs/etl/")
    page.get_by_label("Program file (.py or .jar)").set_input_files(
        {"name": "long.py", "mimeType": "text/x-python", "buffer": LONG_JOB.encode()})
    page.get_by_label("Name", exact=True).fill("long-job")
    # Two cores on one-core workers: the SIG scales out, and the chart shows it.
    page.get_by_label("Key").last.fill("spark.cores.max")
    page.get_by_label("Value").last.fill("2")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#app-state")).to_have_text("RUNNING", timeout=300_000)
    expect(page.locator("#driver-log")).to_contain_text("RESULT started", timeout=300_000)  # followed live
    expect(page.get_by_role("link", name="Open the application's Spark UI")).to_be_visible()
    page.get_by_role("button", name="Kill application").click()
    expect(page.locator("#app-state")).to_have_text("KILLED", timeout=120_000)
    expect(page.get_by_role("button", name="Kill application")).to_have_count(0, timeout=10_000)
    page.get_by_role("link", name="← SIG etl").click()
    chart = page.get_by_role("img", name=re.compile("Workers and demand over time"))
    expect(chart).to_have_attribute("data-points", re.compile(r"^([2-9]|\d\d+)$"), timeout=120_000)
    expect(page.get_by_text(re.compile(r"Scaling decisions \(\d+\)"))).to_be_visible()
    page.get_by_text(re.compile(r"Scaling decisions")).click()
    s.shot("sig")


def test_a_user_sees_no_edit_button_and_another_tenant_sees_nothing(login, console_stack: Stack) -> None:
    bob = login("bob").page
    bob.get_by_role("link", name="acme").click()
    bob.get_by_role("link", name="etl").click()
    expect(bob.get_by_role("heading", name="SIG etl")).to_be_visible()
    expect(bob.get_by_role("link", name="Edit SIG")).to_have_count(0)
    expect(bob.get_by_role("button", name="Delete SIG")).to_have_count(0)
    expect(bob.get_by_role("row", name=re.compile("first-job"))).to_have_count(0)  # alice's, not his
    dave = login("dave", width=420, height=800)  # and a narrow window
    page = dave.page
    expect(page.get_by_role("link", name="beta")).to_be_visible()
    expect(page.get_by_role("link", name="acme")).to_have_count(0)
    for path in ("/platform/t/acme/", "/platform/t/acme/sigs/etl/"):
        resp = page.goto(console_stack.proxy_url + path)
        assert resp is not None and resp.status == 404
    resp = page.goto(console_stack.proxy_url + "/sig/acme/etl/")
    assert resp is not None and resp.status == 404
    page.goto(console_stack.proxy_url + "/platform/")
    dave.shot("narrow-home")


def test_tokens_and_logout(login, console_stack: Stack) -> None:
    s = login("carol")
    page = s.page
    page.get_by_role("link", name="API tokens").click()
    page.get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Create token").click()
    token = page.get_by_label("Token").input_value()
    assert token.startswith("spaas_")
    expect(page.get_by_role("button", name="Revoke laptop")).to_be_visible()
    s.shot("tokens")
    page.get_by_role("button", name="Revoke laptop").click()
    expect(page.get_by_role("status")).to_contain_text("Token revoked.")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r".*/platform/login.*"))
    resp = page.goto(console_stack.proxy_url + "/platform/")
    assert resp is not None and "/platform/login" in page.url


def test_keyboard_only(browser, console_stack: Stack, ldap_server) -> None:
    """Log in and reach a SIG with the keyboard alone; focus is always visible (outline)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto(console_stack.proxy_url + "/platform/")
        page.keyboard.press("Tab")
        page.keyboard.type("bob")
        page.keyboard.press("Tab")
        page.keyboard.type(ldap_server.passwords["bob"])
        page.keyboard.press("Enter")
        page.wait_for_url(console_stack.proxy_url + "/platform/")

        def tab_to(text: str) -> None:
            for _ in range(30):
                page.keyboard.press("Tab")
                if page.evaluate("document.activeElement && document.activeElement.textContent.trim()") == text:
                    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
                    assert outline != "none", f"no visible focus on {text!r}"
                    page.keyboard.press("Enter")
                    return
            raise AssertionError(f"{text!r} is not reachable with Tab")

        tab_to("acme")
        expect(page.get_by_role("heading", name="Tenant acme")).to_be_visible()
        tab_to("etl")
        expect(page.get_by_role("heading", name="SIG etl")).to_be_visible()
    finally:
        context.close()
