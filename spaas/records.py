"""Typed records: the one validated path from etcd values to the controllers and the API.

Every record family read by a controller or listed by the API has a pydantic model here with
`from_entry(entry)` (validate, or raise `InvalidRecord` naming the key) and `to_value()` (what is
stored). The listing helpers (`read_sigs`, `read_apps`, `read_all_apps`, `read_hosts`,
`read_tenants`, `read_members`, `read_user_tokens`) yield the valid records and report the bad
ones: a value that is not a JSON object, has wrong types or missing fields, holds absurd
numbers, or a key that does not follow the layout (`keys.py`) fails only itself. It is logged
once per key revision, counted in `spaas_bad_records_total{family}`, and handed back as a
`BadRecord` so the caller can show it where it belongs (an application FAILED with reason
`InvalidRecord`, a SIG's status reason). Everything else keeps reconciling and listing.

Tenant code can write its own SIG's `{p}/hosts/{t}/{s}/` and `{p}/apps/{t}/{s}/` prefixes
(`spaas/etcdauth.py`), so those are read as untrusted input; the other families are read the
same way because a bug or a hand edit must not stop the platform either.

Models accept unknown extra fields (a newer writer may add some) but are strict about the types
and ranges of the fields the platform uses; their defaults are the only defaults.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from spaas.errors import PermanentError
from spaas.keys import Keys
from spaas.model import Application, AppState, BuildState, Name, Phase, Quota, SigSpec, TenantRole
from spaas.store import Entry, Store

log = logging.getLogger(__name__)

BAD_RECORDS = Counter("spaas_bad_records_total", "Malformed etcd records skipped, by family (each key revision once)",
                      ["family"])

SIG_PARTS = ("spec", "build", "status")
APP_PARTS = ("spec", "state", "kill", "heartbeat")
STMT_PARTS = ("code", "cancel", "result")  # a Livy session's statements: stmts/{n}/{part}
STMT_NO_RE = re.compile(r"^[0-9]{1,12}$")
APP_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SEGMENT_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
Timestamp = float | None
Text = str | None


class InvalidRecord(PermanentError):
    """A stored value that does not match its record model (or a key outside the layout)."""

    code = "InvalidRecord"

    def __init__(self, key: str, family: str, reason: str) -> None:
        super().__init__(f"invalid {family} record {key}: {reason}")
        self.key, self.family, self.reason = key, family, reason


def _summary(exc: ValidationError) -> str:
    """The first few problems, by field; never the offending values (they may be anything)."""
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "value"
        parts.append(f"{loc}: {err.get('msg')}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


class Record(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    family: ClassVar[str] = "record"
    _entry: Entry | None = PrivateAttr(default=None)
    # `as_value`, once computed: a slot, not a field or private attribute, so it is no part of
    # the record's equality and a `model_copy` (another value) starts without it.
    __slots__ = ("_shared_value",)

    @classmethod
    def from_value(cls, key: str, value: dict[str, Any]) -> Any:
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            raise InvalidRecord(key, cls.family, _summary(exc)) from None

    @classmethod
    def from_entry(cls, entry: Entry) -> Any:
        """The validated record of `entry`; `InvalidRecord` if the value does not fit."""
        if entry.error:
            raise InvalidRecord(entry.key, cls.family, entry.error)
        record = cls.from_value(entry.key, entry.value)
        record._entry = entry
        return record

    @property
    def entry(self) -> Entry | None:
        """The etcd entry it was read from (key, mod_revision for compare-and-swap, lease)."""
        # The private dict itself: pydantic's attribute fallback costs microseconds, and a
        # controller's pass asks thousands of records.
        private = self.__pydantic_private__
        return private.get("_entry") if private else None

    def to_value(self) -> dict[str, Any]:
        """What is stored: a new dict, the caller's to change."""
        return self.model_dump(mode="json")

    def as_value(self) -> dict[str, Any]:
        """`to_value()` computed once per record and shared by every caller: read it, never change
        it (take `to_value()` for a dict to edit). Records are frozen and `decode` keeps each with
        its entry, so a controller's pass turns each record into a dict once per key revision
        instead of once per pass (bench/scale.py: 25,000 dumps a pass at 1,000 tenants)."""
        value: dict[str, Any] | None = getattr(self, "_shared_value", None)
        if value is None:
            value = self.to_value()
            object.__setattr__(self, "_shared_value", value)  # frozen for fields, not for this slot
        return value


# -- SIG records --------------------------------------------------------------------------------
class SigSpecRecord(Record):
    """`{p}/sigs/{t}/{s}/spec`, written by the API."""

    family: ClassVar[str] = "sig_spec"
    spec: SigSpec
    generation: int = Field(ge=1, le=10**9)
    deleting: bool = False
    created_at: Timestamp = None
    updated_at: Timestamp = None


class BuildStatus(Record):
    """`{p}/sigs/{t}/{s}/build`, written by the builder."""

    family: ClassVar[str] = "sig_build"
    generation: int = Field(default=0, ge=0, le=10**9)
    key: Text = None
    state: BuildState
    artifact: Text = None
    message: Text = None
    reason: Text = None
    started_at: Timestamp = None
    finished_at: Timestamp = None
    cache_hit: bool = False
    joined: bool = False


class WorkerCounts(Record):
    family: ClassVar[str] = "sig_status"
    desired: int = Field(default=0, ge=0, le=100_000)
    ready: int = Field(default=0, ge=0, le=100_000)
    running: int = Field(default=0, ge=0, le=100_000)
    members: list[int] | None = Field(default=None, max_length=10_000)
    # Worker indices that were ready at the last pass, and those lost since (died, not removed).
    ready_members: list[int] = Field(default=[], max_length=10_000)
    lost: dict[str, float] = {}
    last_change_at: Timestamp = None


class SigStatus(Record):
    """`{p}/sigs/{t}/{s}/status`, written by the scaler."""

    family: ClassVar[str] = "sig_status"
    phase: Phase
    reason: Text = None
    message: Text = None
    observed_generation: int = Field(default=0, ge=0, le=10**9)
    workers: WorkerCounts = WorkerCounts()
    master_url: Text = None
    ui_url: Text = None
    since: Timestamp = None
    updated_at: Timestamp = None
    invalid_records: list[str] = Field(default=[], max_length=100)


class BuildRecord(Record):
    """`{p}/builds/{key}`: the artifact of a build key, written by the builder."""

    family: ClassVar[str] = "build"
    state: BuildState
    artifact: Text = None
    message: Text = None
    finished_at: Timestamp = None
    duration_s: float | None = None
    spark_version: Text = None


class SecretRecord(Record):
    """`{p}/secrets/{t}/{s}`: the SIG's Spark secret (written by the API, never served)."""

    family: ClassVar[str] = "secret"
    secret: str = Field(min_length=1, max_length=1024)


# -- hosts --------------------------------------------------------------------------------------
class HostRecord(Record):
    """`{p}/hosts/{t}/{s}/{host}`, written (leased) by the agent; tenant code can write it too.
    The host name is the key's last segment, whatever the value says."""

    family: ClassVar[str] = "host"
    host: Text = None
    role: Literal["master", "worker", "history", "notebook"]
    index: int = Field(default=0, ge=0, le=100_000)
    ip: str = Field(min_length=1, max_length=64)
    config_hash: str = Field(default="", max_length=64)
    generation: int = Field(default=0, ge=0, le=10**9)
    ready: bool = False
    ports: dict[str, int] = {}
    spark_url: Text = None
    ui_url: Text = None
    master: Text = None
    pid: int | None = None
    spark_version: Text = None
    registered_at: Timestamp = None
    # Notebook servers (role "notebook", spaas/notebooks.py): whose it is, and Jupyter's own last activity.
    user: Text = None
    last_activity: Timestamp = None

    @classmethod
    def from_entry(cls, entry: Entry) -> Any:
        """Named after its key's last segment (whatever the value says), once per key revision
        (`decode` keeps it) rather than copied on every listing."""
        record = super().from_entry(entry)
        host = entry.key.rsplit("/", 1)[-1]
        if record.host != host:
            record = record.model_copy(update={"host": host})
        return record


# -- applications -------------------------------------------------------------------------------
class SessionSpec(Record):
    """A Livy session's part of its application spec (absent for batches and plain applications)."""

    family: ClassVar[str] = "app_spec"
    kind: str = Field(max_length=32)
    heartbeatTimeoutInSecond: int = Field(default=0, ge=0)
    idle_timeout_s: int = Field(ge=0)


class AppSpecRecord(Record):
    """`{p}/apps/{t}/{s}/{id}/spec`, written by the API."""

    family: ClassVar[str] = "app_spec"
    request: Application
    submitter: str | None = Field(default=None, max_length=256)
    submitted_at: Timestamp = None
    session: SessionSpec | None = None


class HeartbeatRecord(Record):
    """`{p}/apps/{t}/{s}/{id}/heartbeat`: a Livy client's last heartbeat, written by the API."""

    family: ClassVar[str] = "app_heartbeat"
    at: float


class AppStateRecord(Record):
    """`{p}/apps/{t}/{s}/{id}/state`, written by the master's agent (the API for a never-started kill)."""

    family: ClassVar[str] = "app_state"
    state: AppState
    reason: Text = None
    message: Text = None
    agent: Text = None
    exit_code: int | None = None
    spark_app_id: Text = None
    started_at: Timestamp = None
    finished_at: Timestamp = None
    updated_at: Timestamp = None


class KillRecord(Record):
    """`{p}/apps/{t}/{s}/{id}/kill`, written by the API."""

    family: ClassVar[str] = "app_kill"
    requested_at: Timestamp = None
    by: Text = None


# -- tenants, members, tokens -------------------------------------------------------------------
class TenantRecord(Record):
    family: ClassVar[str] = "tenant"
    name: Name
    quota: Quota = Quota()
    created_at: Timestamp = None


class MemberRecord(Record):
    family: ClassVar[str] = "member"
    roles: list[TenantRole] = Field(max_length=3)
    granted_by: Text = None
    updated_at: Timestamp = None


class UserTokenRecord(Record):
    """`{p}/auth/user-tokens/{user}/{id}` (and, without `hash`, `{p}/auth/tokens/{sha256}`)."""

    family: ClassVar[str] = "token"
    id: str
    kind: Literal["session", "api"]
    user: str
    groups: list[str] = []
    name: str = ""
    created_at: float
    expires_at: float
    hash: Text = None
    # Hashes of the tokens this one was minted with (parent first is last): it dies with any of them.
    ancestors: list[str] = []


# -- reporting ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class BadRecord:
    key: str
    family: str
    reason: str
    entry: Entry | None = None

    @property
    def message(self) -> str:
        return f"{self.key}: {self.reason}"


_seen: OrderedDict[tuple[str, int], None] = OrderedDict()
_seen_lock = threading.Lock()
_SEEN_MAX = 10_000


def report(bad: BadRecord) -> BadRecord:
    """Log and count a bad record once per key revision (every pass meets it again)."""
    ident = (bad.key, bad.entry.mod_revision if bad.entry else 0)
    with _seen_lock:
        if ident in _seen:
            return bad
        _seen[ident] = None
        while len(_seen) > _SEEN_MAX:
            _seen.popitem(last=False)
    BAD_RECORDS.labels(bad.family).inc()
    log.warning("skipping invalid %s record %s: %s", bad.family, bad.key, bad.reason)
    return bad


R = TypeVar("R", bound=Record)
T = TypeVar("T")


def decode(model: type[R], entry: Entry) -> R | BadRecord:
    """The record, or the reported `BadRecord`.

    A valid record is kept in the entry's own memo (`Entry.memo`): etcd never changes a value at
    a revision, and records are frozen, so the same entry is validated once, however often it is
    read. The watch caches (spaas/cache.py) hand out the same entry objects until the key changes
    or goes, so every cached read after the first (the API's per request, the scaler's per pass)
    costs a dict lookup, and the memo holds exactly what the caches hold: a changed key is a new
    entry (validated again), a deleted one takes its record with it. A bad value is not kept: it
    is validated (and shown) on every read, and logged once per key revision (`report`)."""
    found = entry.memo.get(model)
    if found is not None:
        return found  # type: ignore[no-any-return]
    try:
        record: R = model.from_entry(entry)
    except InvalidRecord as exc:
        return report(BadRecord(entry.key, exc.family, exc.reason, entry))
    entry.memo[model] = record
    return record


def _junk(entry: Entry, family: str, why: str) -> BadRecord:
    return report(BadRecord(entry.key, family, why, entry))


@dataclass
class Listing(Generic[T]):
    """Valid records, and the bad ones met on the way (already logged and counted)."""

    records: list[T] = field(default_factory=list)
    bad: list[BadRecord] = field(default_factory=list)

    def __iter__(self) -> Iterator[T]:
        return iter(self.records)


# -- SIGs ---------------------------------------------------------------------------------------
@dataclass
class SigRecords:
    """One SIG's records. `spec` is None when its spec is invalid (then `invalid` says why).
    Those of `read_sigs` are shared by every listing that meets the same entries: read them,
    never change them."""

    tenant: str
    sig: str
    entries: dict[str, Entry] = field(default_factory=dict)
    spec: SigSpecRecord | None = None
    build: BuildStatus | None = None
    status: SigStatus | None = None
    bad: list[BadRecord] = field(default_factory=list)

    @property
    def invalid(self) -> BadRecord | None:
        """The spec's problem, if the spec exists but cannot be read."""
        return next((b for b in self.bad if b.key.endswith("/spec")), None)

    @property
    def deleting(self) -> bool:
        return bool(self.spec and self.spec.deleting)


def sig_records(tenant: str, sig: str, entries: dict[str, Entry]) -> SigRecords:
    """Validate one SIG's spec, build and status entries (keyed by part)."""
    rec = SigRecords(tenant, sig, entries=dict(entries))
    models: dict[str, type[Record]] = {"spec": SigSpecRecord, "build": BuildStatus, "status": SigStatus}
    for part, entry in entries.items():
        if part not in models:
            rec.bad.append(_junk(entry, "sig", f"unexpected key {part!r} under the SIG"))
            continue
        value = decode(models[part], entry)
        if isinstance(value, BadRecord):
            rec.bad.append(value)
        elif isinstance(value, SigSpecRecord) and value.spec.name != sig:
            rec.bad.append(_junk(entry, "sig_spec", f"spec names SIG {value.spec.name!r}, its key {sig!r}"))
        else:
            setattr(rec, part, value)
    return rec


def read_sigs(store: Store, keys: Keys, tenant: str | None = None, sig: str | None = None) -> Listing[SigRecords]:
    """Every SIG that has a spec key (valid or not), in (tenant, sig) order; keys that fit no
    SIG, and SIG keys without a spec, go to `bad`."""
    prefix = keys.sig(tenant, sig) if tenant and sig else keys.sigs(tenant) if tenant else keys.all_sigs()
    return sigs_from_entries(store.list(prefix), keys)


def sigs_from_entries(entries: Iterable[Entry], keys: Keys) -> Listing[SigRecords]:
    """`read_sigs` over entries already listed (under `keys.all_sigs()` or a part of it)."""
    root = keys.all_sigs()
    grouped: dict[tuple[str, str], dict[str, Entry]] = {}
    out: Listing[SigRecords] = Listing()
    for entry in entries:
        parts = entry.key[len(root):].split("/")
        if len(parts) != 3 or not SEGMENT_RE.match(parts[0]) or not SEGMENT_RE.match(parts[1]):
            out.bad.append(_junk(entry, "sig", "key outside the layout {p}/sigs/{tenant}/{sig}/{part}"))
            continue
        grouped.setdefault((parts[0], parts[1]), {})[parts[2]] = entry
    for (t, s), parts_of in sorted(grouped.items()):
        if "spec" not in parts_of:
            continue  # half-deleted leftovers (the scaler's forget() deletes the spec last)
        out.records.append(_kept_sig_records(t, s, parts_of))
    return out


def _kept_sig_records(tenant: str, sig: str, entries: dict[str, Entry]) -> SigRecords:
    """`sig_records`, kept with the SIG's spec entry (`Entry.memo`) while its other entries are
    the very same: a listing of unchanged SIGs builds nothing new (the scaler's full pass lists
    every SIG; what it builds anew and holds through the pass is what the garbage collector walks)."""
    memo = entries["spec"].memo
    stamp = (tenant, sig, tuple(entries.items()))
    found = memo.get(SigRecords)
    if found is not None and found[0] == stamp:  # entries compare by identity first: the cache's own objects
        return found[1]  # type: ignore[no-any-return]
    rec = sig_records(tenant, sig, entries)
    memo[SigRecords] = (stamp, rec)
    return rec


# -- hosts --------------------------------------------------------------------------------------
def read_hosts(store: Store, keys: Keys, tenant: str | None = None, sig: str | None = None) -> Listing[HostRecord]:
    """Valid host records (host name from the key) under all hosts, a tenant's or one SIG's."""
    prefix = keys.hosts(tenant, sig) if tenant and sig else keys.all_hosts() + (f"{tenant}/" if tenant else "")
    root = keys.all_hosts()
    out: Listing[HostRecord] = Listing()
    for entry in store.list(prefix):
        parts = entry.key[len(root):].split("/")
        if len(parts) != 3 or not all(SEGMENT_RE.match(p) for p in parts):
            out.bad.append(_junk(entry, "host", "key outside the layout {p}/hosts/{tenant}/{sig}/{host}"))
            continue
        value = decode(HostRecord, entry)  # named after parts[2] (HostRecord.from_entry)
        if isinstance(value, BadRecord):
            out.bad.append(value)
            continue
        out.records.append(value)
    return out


def host_sig(record: HostRecord | BadRecord, keys: Keys) -> tuple[str, str]:
    """(tenant, sig) of a host record or of a bad one under the hosts prefix."""
    key = record.entry.key if isinstance(record, HostRecord) and record.entry else getattr(record, "key", "")
    parts = key[len(keys.all_hosts()):].split("/")
    return (parts[0], parts[1]) if len(parts) >= 2 else ("", "")


# -- applications -------------------------------------------------------------------------------
@dataclass
class AppRecords:
    """One application's records. A bad spec or state makes it `invalid` (shown as FAILED with
    reason InvalidRecord); a kill key counts as a kill request whatever its value."""

    tenant: str
    sig: str
    app_id: str
    entries: dict[str, Entry] = field(default_factory=dict)
    spec: AppSpecRecord | None = None
    state: AppStateRecord | None = None
    kill: bool = False
    heartbeat: HeartbeatRecord | None = None
    bad: list[BadRecord] = field(default_factory=list)

    @property
    def statements(self) -> dict[str, Entry]:
        """A Livy session's statement keys (`stmts/{n}/code|cancel|result`), raw: the API and the
        agent own their shapes (services/api/routes/livy.py, services/agent/sessions.py)."""
        return {k: e for k, e in self.entries.items() if k.startswith("stmts/")}

    @property
    def has_spec(self) -> bool:
        return "spec" in self.entries

    @property
    def invalid(self) -> BadRecord | None:
        return next((b for b in self.bad if b.key.rsplit("/", 1)[-1] in ("spec", "state")), None)


_APP_MODELS: dict[str, type[Record]] = {"spec": AppSpecRecord, "state": AppStateRecord, "kill": KillRecord,
                                        "heartbeat": HeartbeatRecord}


def _app_part(parts: list[str], depth: int) -> tuple[tuple[str, ...], str] | None:
    """(identity, part below the app) of a key split below the root, or None outside the layout.
    Parts: spec, state, kill, heartbeat, and a session's stmts/{n}/code|cancel|result."""
    if len(parts) == depth + 2 and parts[-3] == "stmts" and STMT_NO_RE.match(parts[-2]) \
            and parts[-1] in STMT_PARTS:
        ident, part = parts[:-3], "/".join(parts[-3:])
    elif len(parts) == depth and parts[-1] in APP_PARTS:
        ident, part = parts[:-1], parts[-1]
    else:
        return None
    if not APP_ID_RE.match(ident[-1]) or not all(SEGMENT_RE.match(p) for p in ident[:-1]):
        return None
    return tuple(ident), part


def _apps(entries: list[Entry], root: str, depth: int) -> Listing[AppRecords]:
    """Group `{root}{t}/{s}/{id}/{part}` (depth 4) or `{root}{id}/{part}` (depth 2, one SIG)."""
    out: Listing[AppRecords] = Listing()
    grouped: dict[tuple[str, ...], dict[str, Entry]] = {}
    for entry in entries:
        found_part = _app_part(entry.key[len(root):].split("/"), depth)
        if found_part is None:
            out.bad.append(_junk(entry, "app", "key outside the layout {p}/apps/{tenant}/{sig}/{id}/"
                                               "spec|state|kill|heartbeat|stmts/{n}/code|cancel|result"))
            continue
        ident, part = found_part
        grouped.setdefault(ident, {})[part] = entry
    for ident, found in sorted(grouped.items()):
        tenant, sig = (ident[0], ident[1]) if depth == 4 else ("", "")
        rec = AppRecords(tenant, sig, ident[-1], entries=found, kill="kill" in found)
        for part, entry in found.items():
            if part.startswith("stmts/"):
                if entry.error:  # not JSON: junk, but it does not make the application invalid
                    rec.bad.append(_junk(entry, "app_statement", entry.error))
                continue
            value = decode(_APP_MODELS[part], entry)
            if isinstance(value, BadRecord):
                rec.bad.append(value)
            elif part != "kill":
                setattr(rec, part, value)
        out.records.append(rec)
    return out


def read_apps(store: Store, keys: Keys, tenant: str, sig: str) -> Listing[AppRecords]:
    """One SIG's applications, by id; junk keys under its prefix go to `bad`."""
    listing = _apps(store.list(keys.apps(tenant, sig)), keys.apps(tenant, sig), 2)
    for rec in listing.records:
        rec.tenant, rec.sig = tenant, sig
    return listing


def read_app(store: Store, keys: Keys, tenant: str, sig: str, app_id: str) -> AppRecords | None:
    """One application's records (None if it has no key at all, or an id outside the layout)."""
    if not APP_ID_RE.match(app_id):
        return None
    return app_from_entries(store.list(keys.app(tenant, sig, app_id)), keys, tenant, sig)


def app_from_entries(entries: list[Entry], keys: Keys, tenant: str, sig: str) -> AppRecords | None:
    """`read_app` over the entries already listed under `keys.app(tenant, sig, app_id)`."""
    listing = _apps(entries, keys.apps(tenant, sig), 2)
    for rec in listing.records:
        rec.tenant, rec.sig = tenant, sig
    return listing.records[0] if listing.records else None


def read_all_apps(store: Store, keys: Keys) -> Listing[AppRecords]:
    root = keys.all_apps()
    return _apps(store.list(root), root, 4)


# -- tenants, members, tokens -------------------------------------------------------------------
def read_tenants(store: Store, keys: Keys) -> Listing[TenantRecord]:
    out: Listing[TenantRecord] = Listing()
    for entry in store.list(keys.tenants()):
        value = decode(TenantRecord, entry)
        if isinstance(value, BadRecord):
            out.bad.append(value)
        elif value.name != entry.key.rsplit("/", 1)[-1]:
            out.bad.append(_junk(entry, "tenant", f"record names tenant {value.name!r}"))
        else:
            out.records.append(value)
    return out


def read_members(store: Store, prefix: str) -> Listing[tuple[str, MemberRecord]]:
    """(rest of the key after `prefix`, grant) for each valid grant under `prefix`."""
    out: Listing[tuple[str, MemberRecord]] = Listing()
    for entry in store.list(prefix):
        value = decode(MemberRecord, entry)
        if isinstance(value, BadRecord):
            out.bad.append(value)
        else:
            out.records.append((entry.key[len(prefix):], value))
    return out


def read_user_tokens(store: Store, prefix: str) -> Listing[UserTokenRecord]:
    out: Listing[UserTokenRecord] = Listing()
    for entry in store.list(prefix):
        value = decode(UserTokenRecord, entry)
        if isinstance(value, BadRecord):
            out.bad.append(value)
        else:
            out.records.append(value)
    return out


def get_record(store: Store, key: str, model: type[R]) -> R | BadRecord | None:
    """One key through the same path: the record, the reported `BadRecord`, or None if absent."""
    entry = store.get(key)
    return None if entry is None else decode(model, entry)
