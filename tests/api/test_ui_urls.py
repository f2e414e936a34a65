"""SIG and application `ui_url`s point through the proxy when its public URL is configured."""

from __future__ import annotations

from spaas.records import AppRecords, AppSpecRecord, AppStateRecord, sig_records
from spaas.store import Entry

from services.api.records import app_view, sig_ui_base, sig_view


def _e(value: dict) -> Entry:
    return Entry("k", value, 1, 1)


def _app(state: str) -> AppRecords:
    spec = {"request": {"file": "files/job.py"}}
    status = {"state": state, "spark_app_id": "app-1"}
    return AppRecords("acme", "etl", "a1", entries={"spec": _e(spec), "state": _e(status)},
                      spec=AppSpecRecord.model_validate(spec), state=AppStateRecord.model_validate(status))


def test_ui_urls_go_through_the_proxy() -> None:
    base = sig_ui_base("https://spaas.example:8090/", "acme", "etl")
    assert base == "https://spaas.example:8090/sig/acme/etl/"
    spec = _e({"spec": {"name": "etl", "spark_version": "3.5.9"}, "generation": 1})
    ready = sig_records("acme", "etl", {"spec": spec, "status": _e(
        {"phase": "READY", "ui_url": "http://10.1.0.2:8080", "observed_generation": 1})})
    assert sig_view("acme", "etl", ready, ui_base=base)["status"]["ui_url"] == base
    assert sig_view("acme", "etl", ready)["status"]["ui_url"] == "http://10.1.0.2:8080"  # no proxy configured
    pending = sig_records("acme", "etl", {"spec": spec})
    assert sig_view("acme", "etl", pending, ui_base=base)["status"]["ui_url"] is None
    assert app_view("a1", _app("RUNNING"), ui_base=base)["ui_url"] == base + "proxy/app-1/"
    assert app_view("a1", _app("FINISHED"), ui_base=base)["ui_url"] is None


def test_history_urls_go_through_the_proxy_once_there_is_something_to_show() -> None:
    base = sig_ui_base("https://spaas.example:8090/", "acme", "etl")
    spec = _e({"spec": {"name": "etl", "spark_version": "3.5.9", "history": {"enabled": True}}, "generation": 1})
    ready = {"phase": "READY", "ui_url": "http://10.1.0.2:8080", "observed_generation": 1,
             "history": {"enabled": True, "ready": True, "ui_url": "http://10.1.0.3:18080"}}
    view = sig_view("acme", "etl", sig_records("acme", "etl", {"spec": spec, "status": _e(ready)}), ui_base=base)
    assert view["status"]["history"] == {"enabled": True, "ready": True, "ui_url": base + "history/"}
    starting = dict(ready, history={"enabled": True, "ready": False, "ui_url": None})
    view = sig_view("acme", "etl", sig_records("acme", "etl", {"spec": spec, "status": _e(starting)}), ui_base=base)
    assert view["status"]["history"] == {"enabled": True, "ready": False, "ui_url": None}
    off = _e({"spec": {"name": "etl", "spark_version": "3.5.9"}, "generation": 1})
    view = sig_view("acme", "etl", sig_records("acme", "etl", {"spec": off, "status": _e({"phase": "READY"})}))
    assert view["status"]["history"] == {"enabled": False, "ready": False, "ui_url": None}
    # An application links its history page once it ended, and only on a SIG with a history server.
    assert app_view("a1", _app("FINISHED"), ui_base=base, history=True)["history_url"] == \
        base + "history/history/app-1/jobs/"
    assert app_view("a1", _app("FAILED"), ui_base=base, history=True)["history_url"] == base + "history/history/app-1/jobs/"
    assert app_view("a1", _app("RUNNING"), ui_base=base, history=True)["history_url"] is None
    assert app_view("a1", _app("FINISHED"), ui_base=base)["history_url"] is None
