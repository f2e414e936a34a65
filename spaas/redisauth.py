"""Redis ACLs for spaas: the platform services log in with the operator's password; each SIG's
containers get a Redis user of their own that reaches only what that SIG's agent uses.

    user  <prefix>.sig.<tenant>.<sig>                 (the same name as its etcd user)
    BRPOP/LPUSH/LLEN/EXISTS  spaas.apps.<t>.<s>        its application queue (and the priority
                             spaas.apps.<t>.<s>\\x06\\x16*  sub-queues kombu keeps beside it)
    SET/GET/DEL/EXPIRE       spaas:demand:<t>/<s>      the demand report the scaler reads
    LPUSH only               spaas.scaler              its host/demand hints to the scaler
    PING, CLIENT SETNAME/GETNAME/ID                    connection housekeeping

No pub/sub channel, no KEYS/SCAN/FLUSH*/CONFIG/ACL, no other SIG's keys, no build queue, no login
failure counters, no log streams. Tenant and SIG names are DNS labels (no dots, no glob
characters), so `spaas.apps.<t>.<s>` never matches another SIG's queue.

What the agent does with the bus is shaped for this (spaas/bus.py, `confined=True`): the scaler
declares the agent's queue and its binding (`_kombu.binding.*` is platform-only); the agent
consumes without declaring and without kombu's shared `unacked*` keys (its events are hints,
so an unacknowledged one lost costs latency only), and sends its hints straight to the scaler's
queue through kombu's anonymous exchange (no read of the binding table).

A SIG user's password is an HMAC of the SIG's identity keyed by the platform's Redis password,
re-derived on every pass and stored nowhere a SIG can read. Redis keeps ACL users in memory
only, so the scaler re-applies them on every reconcile pass (one idempotent `ACL SETUSER`): a
restarted Redis has its SIG users back within one resync period. Without a platform password
(the embedded stack: single trust) SIG containers get the platform URL and no user is made.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import redis

from spaas import messages
from spaas.errors import TemporaryError
from spaas.etcdauth import sig_user
from spaas.keys import Keys

log = logging.getLogger(__name__)

KOMBU_SEP = "\x06\x16"
DEMAND_PREFIX = "spaas:demand:"
CONNECTION_COMMANDS = ("+ping", "+client|setname", "+client|getname", "+client|id")


def demand_key(tenant: str, sig: str, prefix: str = "spaas:") -> str:
    return f"{prefix}demand:{tenant}/{sig}"


def sig_rules(tenant: str, sig: str) -> tuple[str, ...]:
    """`ACL SETUSER` rules (after the password) of one SIG's user. Pure."""
    queue = messages.agent_queue(tenant, sig)
    return (
        "resetkeys", "resetchannels", "clearselectors", "-@all", *CONNECTION_COMMANDS,
        f"~{queue}", f"~{queue}{KOMBU_SEP}*", "+brpop", "+lpush", "+llen", "+exists",
        f"(~{demand_key(tenant, sig)} +set +get +del +expire)",
        f"(~{messages.SCALER_QUEUE} +lpush)",
    )


def sig_password(secret: str, keys: Keys, tenant: str, sig: str) -> str:
    """HMAC-SHA256 of the SIG's identity keyed by the platform's Redis password. Pure."""
    message = f"spaas-redis-sig\0{keys.prefix}\0{tenant}\0{sig}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def url_password(url: str) -> str:
    """The password in a redis:// URL ("" when there is none)."""
    return unquote(urlsplit(url).password or "")


def url_with_user(url: str, user: str, password: str) -> str:
    """`url` logging in as `user`/`password` instead of whatever it had."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" if user or password else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def without_credentials(url: str) -> str:
    return url_with_user(url, "", "")


class SigRedisAccess:
    """The scaler's view: each SIG's Redis user and what its containers get to reach Redis with."""

    def __init__(self, redis_url: str, keys: Keys, *, timeout_s: float = 5.0) -> None:
        self._url = redis_url
        self._keys = keys
        self._secret = url_password(redis_url)
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    @property
    def enabled(self) -> bool:
        """Only with a platform password: without one Redis is single-trust (embedded stack)."""
        return bool(self._secret)

    def ensure(self, tenant: str, sig: str) -> dict[str, str]:
        """Create or refresh the SIG's user (idempotent, atomic); the `SPAAS_REDIS_URL` its containers use."""
        if not self.enabled:
            return {"SPAAS_REDIS_URL": self._url}
        user = sig_user(self._keys, tenant, sig)
        password = sig_password(self._secret, self._keys, tenant, sig)
        try:
            self._redis.execute_command("ACL", "SETUSER", user, "on", "resetpass", f">{password}",
                                        *sig_rules(tenant, sig))
        except redis.RedisError as exc:
            raise TemporaryError(f"cannot set the Redis user of {tenant}/{sig}: {exc}") from None
        return {"SPAAS_REDIS_URL": url_with_user(self._url, user, password)}

    def forget(self, tenant: str, sig: str) -> None:
        """Delete the SIG's user (its connections are closed by Redis); gone already is fine."""
        if not self.enabled:
            return
        try:
            self._redis.execute_command("ACL", "DELUSER", sig_user(self._keys, tenant, sig))
        except redis.RedisError as exc:
            raise TemporaryError(f"cannot delete the Redis user of {tenant}/{sig}: {exc}") from None
        log.info("sig %s/%s: redis user %s removed", tenant, sig, sig_user(self._keys, tenant, sig))
