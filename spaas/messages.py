"""Every message spaas sends, in one module: versioned JSON that carries ids, not objects.

Events are hints. A consumer that receives one re-reads etcd and reconciles; a lost or
duplicated event changes nothing but latency, because every controller also resyncs.
Routing keys: `sig.changed`, `sig.built`, `sig.demand`, `sig.host`, `app.<tenant>.<sig>`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

VERSION = 1

EXCHANGE = "spaas.events"
SCALER_QUEUE = "spaas.scaler"
BUILD_QUEUE = "spaas.builds"
# Celery task names (the API sends them by name; only the builder implements them).
BUILD_TASK = "spaas.builder.build_sig"


def agent_queue(tenant: str, sig: str) -> str:
    """The queue a SIG master's agent takes its applications from."""
    return f"spaas.apps.{tenant}.{sig}"


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = ""
    tenant: str
    sig: str

    @property
    def routing_key(self) -> str:
        return self.type

    def to_json(self) -> str:
        return json.dumps({"type": self.type, "v": VERSION, **asdict(self)}, sort_keys=True)


@dataclass(frozen=True)
class SigChanged(Event):
    """The API wrote a SIG's spec (create, update, delete request)."""

    type: ClassVar[str] = "sig.changed"
    generation: int = 0


@dataclass(frozen=True)
class SigBuilt(Event):
    """The builder finished (or failed) the build of a SIG generation."""

    type: ClassVar[str] = "sig.built"
    generation: int = 0
    build_key: str = ""


@dataclass(frozen=True)
class AppEvent(Event):
    """An application was submitted or asked to stop: wakes the SIG master's agent."""

    type: ClassVar[str] = "app"
    app_id: str = ""
    action: str = "submitted"  # or "kill"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def routing_key(self) -> str:
        return f"app.{self.tenant}.{self.sig}"


@dataclass(frozen=True)
class DemandChanged(Event):
    """A SIG's demand moved (the master's agent saw it, or the API took a sized application)."""

    type: ClassVar[str] = "sig.demand"
    app_id: str = ""


@dataclass(frozen=True)
class HostChanged(Event):
    """A SIG container registered (or re-registered) its host: readiness may have changed."""

    type: ClassVar[str] = "sig.host"
    host: str = ""


# Where a confined publisher (a SIG's agent, spaas/redisauth.py) sends each event it may send:
# straight to the consumer's queue, since it may not read the exchange's bindings.
CONSUMER_QUEUES: dict[str, str] = {DemandChanged.type: SCALER_QUEUE, HostChanged.type: SCALER_QUEUE}


def consumer_queue(event: Event) -> str:
    try:
        return CONSUMER_QUEUES[event.type]
    except KeyError:
        raise ValueError(f"{event.type} events are not sent by SIG containers") from None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls for cls in (SigChanged, SigBuilt, AppEvent, DemandChanged, HostChanged)
}


class UndecodableMessage(ValueError):
    pass


def decode(body: str | bytes | dict[str, Any]) -> Event:
    """Parse a message; `UndecodableMessage` for anything malformed or of a newer version."""
    try:
        data = body if isinstance(body, dict) else json.loads(body)
        cls = EVENT_TYPES[data["type"]]
        if int(data.get("v", 0)) > VERSION:
            raise UndecodableMessage(f"message version {data['v']} is newer than {VERSION}")
        fields = {k: v for k, v in data.items() if k not in ("type", "v")}
        return cls(**fields)
    except (KeyError, TypeError, ValueError) as exc:
        raise UndecodableMessage(f"cannot decode message: {exc}") from None
