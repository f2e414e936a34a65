"""Verified routes: what the proxy may forward to, decided from what the runtime itself reports.

A SIG's agents write host records `{p}/hosts/{t}/{s}/{host}` (ip, ports, role, ready), and so can
any tenant code running in the SIG: they are written with the SIG's own etcd user. The proxy must
not route on them alone, or a tenant could point `/sig/{t}/{s}/` (or forward mode) at any address
it can name: a platform service, a host on the Docker bridge, the metadata address. So the scaler,
which owns the containers, keeps only what the runtime confirms and writes it where SIG users
cannot (`{p}/routes/{t}/{s}/{host}`, see spaas/keys.py and spaas/etcdauth.py):

    {"role": "master", "container": "acme-etl-master-0", "ip": "10.1.0.2",
     "ports": {"spark": 7077, "ui": 8080}, "ready": true, "user": "alice"?}

A port of a host record is kept only if the record's IP is the runtime's address of one of the
SIG's running containers and that container owns the port (Docker and Kubernetes: any port on its
own IP; process runtime: a port one of its processes LISTENs on). A host record named after a
container may only name that container's ports, with that container's role; other records (a
history server, a user's notebook server) may name any container of their SIG. `user` is passed
through when the record has one (notebooks). Pure; the scaler's loop writes what changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from spaas.runtimes.base import Address, Container


def _port(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
        return value
    return None


def verified_routes(hosts: Iterable[Mapping[str, Any]], containers: Iterable[Container],
                    addresses: Mapping[str, Address]) -> dict[str, dict[str, Any]]:
    """Host name -> route record for one SIG, from its host records (each with its `host` name),
    its containers and their runtime-verified addresses. A record with no verified port is left
    out. Pure."""
    running = {c.name: c for c in containers if c.running and c.name in addresses}
    out: dict[str, dict[str, Any]] = {}
    for rec in hosts:
        host, ip, role = str(rec.get("host") or ""), str(rec.get("ip") or ""), str(rec.get("role") or "")
        ports = rec.get("ports")
        if not host or not ip or not role or not isinstance(ports, Mapping):
            continue
        if host in running:
            if running[host].role != role:
                continue  # a worker's record claiming to be the master (or the reverse)
            owners = [running[host]]
        else:
            owners = list(running.values())
        kept: dict[str, int] = {}
        container = ""
        for name, value in sorted(ports.items()):
            port = _port(value)
            if port is None:
                continue
            owner = next((c for c in owners if addresses[c.name].owns(ip, port)), None)
            if owner is None or (container and owner.name != container):
                continue  # not the container's, or a second container's (one record, one container)
            container = owner.name
            kept[str(name)] = port
        if not kept:
            continue
        route: dict[str, Any] = {"role": role, "container": container, "ip": ip, "ports": kept,
                                 "ready": rec.get("ready") is True}
        if isinstance(rec.get("user"), str) and rec["user"]:
            route["user"] = rec["user"]
        out[host] = route
    return out
