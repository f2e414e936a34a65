"""Prometheus metrics of the proxy, by route class (api, sig, forward, session, local, bad)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Histogram

REQUESTS = Counter("spaas_proxy_requests_total", "Requests answered, by route class and status class",
                   ["route", "status"])
UPSTREAM = Histogram("spaas_proxy_upstream_seconds", "Time from forwarding a request to the upstream's answer head",
                     ["route"], buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
ERRORS = Counter("spaas_proxy_errors_total", "Upstream failures, by route class and kind", ["route", "kind"])

_requests: dict[tuple[str, int], Any] = {}
_latency: dict[str, Any] = {}


def request(route: str, status: int) -> None:
    key = (route, status // 100)
    child = _requests.get(key)
    if child is None:
        child = _requests[key] = REQUESTS.labels(route, f"{status // 100}xx")
    child.inc()


def upstream_latency(route: str, seconds: float) -> None:
    child = _latency.get(route)
    if child is None:
        child = _latency[route] = UPSTREAM.labels(route)
    child.observe(seconds)


def error(route: str, kind: str) -> None:
    ERRORS.labels(route, kind).inc()
