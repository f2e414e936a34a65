"""SIG and application `ui_url`s point through the proxy when its public URL is configured."""

from __future__ import annotations

from spaas.store import Entry

from services.api.records import app_view, sig_ui_base, sig_view


def _e(value: dict) -> Entry:
    return Entry("k", value, 1, 1)


def test_ui_urls_go_through_the_proxy() -> None:
    base = sig_ui_base("https://spaas.example:8090/", "acme", "etl")
    assert base == "https://spaas.example:8090/sig/acme/etl/"
    parts = {"spec": _e({"spec": {}, "generation": 1}),
             "status": _e({"phase": "READY", "ui_url": "http://10.1.0.2:8080", "observed_generation": 1})}
    assert sig_view("acme", "etl", parts, ui_base=base)["status"]["ui_url"] == base
    assert sig_view("acme", "etl", parts)["status"]["ui_url"] == "http://10.1.0.2:8080"  # no proxy configured
    pending = {"spec": parts["spec"]}
    assert sig_view("acme", "etl", pending, ui_base=base)["status"]["ui_url"] is None
    app = {"spec": _e({"request": {}}), "state": _e({"state": "RUNNING", "spark_app_id": "app-1"})}
    assert app_view("a1", app, ui_base=base)["ui_url"] == base + "proxy/app-1/"
    done = {"spec": _e({"request": {}}), "state": _e({"state": "FINISHED", "spark_app_id": "app-1"})}
    assert app_view("a1", done, ui_base=base)["ui_url"] is None
