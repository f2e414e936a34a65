"""Which client a request came from behind trusted proxies (spaas/forwarded.py), as tables."""

from __future__ import annotations

import pytest

from spaas.forwarded import TrustedProxies, client_address

TRUSTED = TrustedProxies(["127.0.0.1/32", "::1", "10.0.0.0/8"])


@pytest.mark.parametrize(("peer", "xff", "expected"), [
    ("192.0.2.1", [], "192.0.2.1"),
    ("192.0.2.1", ["6.6.6.6"], "192.0.2.1"),  # an untrusted peer cannot name another client
    ("127.0.0.1", [], "127.0.0.1"),
    ("127.0.0.1", ["192.0.2.7"], "192.0.2.7"),
    ("127.0.0.1", ["6.6.6.6, 192.0.2.7"], "192.0.2.7"),  # what the client wrote left of its address: ignored
    ("127.0.0.1", ["6.6.6.6", "192.0.2.7"], "192.0.2.7"),  # several headers are one list
    ("127.0.0.1", ["192.0.2.7, 10.1.2.3"], "192.0.2.7"),  # a trusted hop (a load balancer) skipped
    ("127.0.0.1", ["10.1.2.3, 10.4.5.6"], "10.1.2.3"),  # every hop trusted: the leftmost
    ("127.0.0.1", ["6.6.6.6, junk"], "127.0.0.1"),  # not an address: the hop that added it
    ("127.0.0.1", ["192.0.2.7:5555"], "192.0.2.7"),
    ("127.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1"),
    ("::1", ["2001:db8::1"], "2001:db8::1"),
    ("::ffff:127.0.0.1", ["192.0.2.7"], "192.0.2.7"),
])
def test_client_address(peer: str, xff: list[str], expected: str) -> None:
    assert client_address(peer, xff, TRUSTED) == expected


def test_host_names_are_resolved_and_cached() -> None:
    calls: list[str] = []
    now = [0.0]

    def resolve(name: str) -> set[str]:
        calls.append(name)
        return {"172.20.0.9"} if len(calls) == 1 else {"172.20.0.10"}

    trusts = TrustedProxies(["proxy"], ttl_s=30, resolve=resolve, clock=lambda: now[0])
    assert trusts("172.20.0.9") and not trusts("172.20.0.10") and not trusts("junk")
    assert calls == ["proxy"]
    now[0] = 31.0  # the proxy container was recreated with another address
    assert trusts("172.20.0.10") and not trusts("172.20.0.9")
    assert not TrustedProxies([]) and not TrustedProxies([])("127.0.0.1")
