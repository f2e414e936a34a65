"""The SIG master's application controller: claims submitted applications, runs their drivers,
reports their state, kills them on request.

Level-triggered: every scan reads the SIG's applications from etcd and `decide()` compares them
with the drivers this agent runs. Bus events only make the next scan come sooner. Claiming is a
put-if-absent of the application's state key, so two masters can never run the same driver.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spaas.errors import Conflict, TemporaryError
from spaas.keys import Keys
from spaas.model import AppState, can_transition
from spaas.records import AppRecords, AppStateRecord, InvalidRecord, Listing, get_record, read_apps
from spaas.store import Store, read_modify_write

from services.agent.drivers import Driver

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AppView:
    app_id: str
    spec: dict[str, Any] | None   # the validated spec record (None: absent or invalid)
    state: dict[str, Any] | None  # the validated state record (None: absent or invalid)
    kill: bool
    invalid: str | None = None    # why its spec or state cannot be read ("key: reason")


@dataclass(frozen=True)
class Action:
    kind: str  # claim | kill | lost | cancel | invalid
    app_id: str


def app_views(listing: Listing[AppRecords]) -> list[AppView]:
    """The SIG's applications as `decide` sees them; only those with a spec key count."""
    views = []
    for rec in listing:
        if not rec.has_spec:
            continue
        bad = rec.invalid
        views.append(AppView(rec.app_id, rec.spec.to_value() if rec.spec else None,
                             rec.state.to_value() if rec.state else None, rec.kill,
                             bad.message if bad else None))
    return views


def decide(apps: list[AppView], running: set[str], *, max_drivers: int) -> list[Action]:
    """What to do now. Pure: the same inputs always give the same actions."""
    actions: list[Action] = []
    free = max(0, max_drivers - len(running))
    for app in apps:
        if app.invalid is not None:
            # A malformed spec or state fails that application only, once no driver of it runs
            # (a running driver's own end records its outcome over a bad state).
            if app.app_id not in running and (app.state is None or not AppState(app.state["state"]).terminal):
                actions.append(Action("invalid", app.app_id))
            continue
        if app.spec is None:
            continue
        state = AppState(app.state["state"]) if app.state else None
        if state is None:
            if app.kill:
                actions.append(Action("cancel", app.app_id))
            elif free > 0:
                actions.append(Action("claim", app.app_id))
                free -= 1
        elif not state.terminal:
            if app.app_id not in running:
                actions.append(Action("lost", app.app_id))
            elif app.kill:
                actions.append(Action("kill", app.app_id))
    return actions


class AppController:
    def __init__(
        self,
        store: Store,
        keys: Keys,
        *,
        tenant: str,
        sig: str,
        container: str,
        make_driver: Callable[[str, dict[str, Any]], Driver],
        max_drivers: int = 4,
    ) -> None:
        self._store = store
        self._keys = keys
        self._tenant = tenant
        self._sig = sig
        self._me = container
        self._make_driver = make_driver
        self._max = max_drivers
        self.drivers: dict[str, Driver] = {}
        # Applications waiting for a free driver slot.
        self.backlog = 0

    # -- state writes (the agent owns the state key) ---------------------------------------
    def _set_state(self, app_id: str, state: AppState, **fields: Any) -> bool:
        allowed = True

        def change(value: dict[str, Any] | None) -> dict[str, Any] | None:
            nonlocal allowed
            now = time.time()
            if value is None:
                return {"state": state.value, "agent": self._me, "updated_at": now, **fields}
            try:
                current = AppStateRecord.from_value(key, value).state
            except InvalidRecord:
                return {"state": state.value, "agent": self._me, "updated_at": now, **fields}  # ours: replace junk
            allowed = current == state or can_transition(current, state)
            if not allowed:
                log.info("app %s/%s/%s: not moving %s -> %s", self._tenant, self._sig, app_id, current.value, state.value)
                return None
            if current == state and not fields:
                return None
            return dict(value, state=state.value, updated_at=now, **fields)

        key = self._keys.app_state(self._tenant, self._sig, app_id)
        try:
            read_modify_write(self._store, key, change)
        except Conflict:
            return False
        return allowed

    # -- one scan --------------------------------------------------------------------------
    def scan(self) -> None:
        self._collect_finished()
        apps = app_views(read_apps(self._store, self._keys, self._tenant, self._sig))
        by_id = {a.app_id: a for a in apps}
        actions = decide(apps, set(self.drivers), max_drivers=self._max)
        unclaimed = sum(1 for a in apps if a.spec is not None and a.state is None and not a.kill and a.invalid is None)
        self.backlog = max(0, unclaimed - sum(1 for a in actions if a.kind == "claim"))
        for action in actions:
            app = by_id[action.app_id]
            try:
                self._act(action, app)
            except TemporaryError as exc:
                log.warning("app %s/%s/%s: %s failed: %s", self._tenant, self._sig, action.app_id, action.kind, exc)
        self._report_running()

    def _act(self, action: Action, app: AppView) -> None:
        ident = f"{self._tenant}/{self._sig}/{app.app_id}"
        if action.kind == "invalid":
            log.warning("app %s: invalid record, failing it: %s", ident, app.invalid)
            self._fail_invalid(app)
        elif action.kind == "cancel":
            self._set_state(app.app_id, AppState.KILLED, reason="KilledBeforeStart", finished_at=time.time())
        elif action.kind == "lost":
            log.warning("app %s: driver lost (master restarted)", ident)
            self._set_state(app.app_id, AppState.FAILED, reason="DriverLost",
                            message="the SIG master restarted while the driver ran", finished_at=time.time())
        elif action.kind == "kill":
            log.info("app %s: killing on request", ident)
            threading.Thread(target=self.drivers[app.app_id].kill, name=f"kill-{app.app_id}", daemon=True).start()
        elif action.kind == "claim":
            key = self._keys.app_state(self._tenant, self._sig, app.app_id)
            try:
                self._store.create(key, {"state": AppState.STARTING.value, "agent": self._me,
                                         "started_at": time.time(), "updated_at": time.time()})
            except Conflict:
                return  # someone else moved it (e.g. killed before start); next scan sees it
            assert app.spec is not None
            driver: Driver | None = None
            try:
                request = dict(app.spec.get("request", {}))
                if app.spec.get("session"):
                    request["session"] = app.spec["session"]  # a Livy session: the driver runs the REPL
                driver = self._make_driver(app.app_id, request)
                driver.start()
            except Exception as exc:  # a bad path or a missing file: the app fails, the agent goes on
                if driver is not None:
                    driver.cleanup()  # its properties file holds the SIG's secret
                log.warning("app %s: cannot start driver: %s", ident, exc)
                self._set_state(app.app_id, AppState.FAILED, reason="DriverStartFailed", message=str(exc)[:2000],
                                finished_at=time.time())
                return
            self.drivers[app.app_id] = driver

    def _fail_invalid(self, app: AppView) -> None:
        """Record FAILED/InvalidRecord on the application's state key (ours to write), unless a
        valid final state is already there."""
        key = self._keys.app_state(self._tenant, self._sig, app.app_id)

        def change(value: dict[str, Any] | None) -> dict[str, Any] | None:
            if value is not None:
                try:
                    if AppStateRecord.from_value(key, value).state.terminal:
                        return None
                except InvalidRecord:
                    pass
            now = time.time()
            return {"state": AppState.FAILED.value, "reason": "InvalidRecord", "message": str(app.invalid)[:2000],
                    "agent": self._me, "finished_at": now, "updated_at": now}

        try:
            read_modify_write(self._store, key, change)
        except Conflict:
            pass  # changed meanwhile; the next scan decides again

    def _report_running(self) -> None:
        for app_id, driver in self.drivers.items():
            if driver.poll() is None and not driver.kill_requested:
                spark_id = driver.find_spark_app_id()
                if spark_id:
                    key = self._keys.app_state(self._tenant, self._sig, app_id)
                    current = get_record(self._store, key, AppStateRecord)
                    if isinstance(current, AppStateRecord) and current.state == AppState.STARTING:
                        self._set_state(app_id, AppState.RUNNING, spark_app_id=spark_id)

    def _collect_finished(self) -> None:
        for app_id, driver in list(self.drivers.items()):
            code = driver.poll()
            if code is None:
                continue
            spark_id = driver.find_spark_app_id()
            driver.cleanup()  # the secret goes as soon as the driver has, whatever the state write does
            extra: dict[str, Any] = {"exit_code": code, "finished_at": time.time()}
            if spark_id:
                extra["spark_app_id"] = spark_id
            if driver.kill_requested:
                ok = self._set_state(app_id, AppState.KILLED, reason="KilledByUser", **extra)
            elif code == 0:
                ok = self._set_state(app_id, AppState.FINISHED, **extra)
            else:
                ok = self._set_state(app_id, AppState.FAILED, reason="NonZeroExit",
                                     message=f"driver exited with code {code}", **extra)
            log.info("app %s/%s/%s: driver exited with %d", self._tenant, self._sig, app_id, code)
            if ok or self._store.get(self._keys.app_spec(self._tenant, self._sig, app_id)) is None:
                del self.drivers[app_id]

    def shutdown(self, reason: str) -> None:
        """Kill every driver (the container is stopping) and record why."""
        for app_id, driver in list(self.drivers.items()):
            driver.kill(grace_s=5.0)
            driver.cleanup()
            try:
                self._set_state(app_id, AppState.FAILED, reason="ContainerStopped", message=reason,
                                exit_code=driver.poll(), finished_at=time.time())
            except TemporaryError:
                pass
        self.drivers.clear()
