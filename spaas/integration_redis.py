"""The Redis side of integrations (spaas/integrations.py has the contract): each integration's
ACL user and its event queue, bound by the platform to the lifecycle exchange.

An integration's user cannot declare anything (with kombu's Redis transport a declaration
writes the exchange's shared binding set, which would let it bind other tenants' keys), so
the platform binds its queue here, with its own credentials. Redis keeps ACL users in memory
only: `ensure` is idempotent and the integrations worker re-applies every integration on each
resync, so a restarted Redis has them back. The password is given to Redis as its SHA-256
(`#<hash>`), so neither etcd nor this process ever holds it after creation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis
from kombu import Connection, Exchange, Queue, binding

from spaas import integrations
from spaas.errors import TemporaryError

log = logging.getLogger(__name__)


class IntegrationRedis:
    def __init__(self, redis_url: str, *, platform_prefix: str, request_queue: str = integrations.REQUEST_QUEUE,
                 timeout_s: float = 5.0) -> None:
        self._url = redis_url
        self._platform = platform_prefix
        self._request_queue = request_queue
        self._timeout = timeout_s
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        self._exchange = Exchange(integrations.EVENT_EXCHANGE, type="topic", durable=True)

    def user(self, tenant: str, name: str) -> str:
        return integrations.integration_user(self._platform, tenant, name)

    def ensure(self, tenant: str, name: str, password_sha256: str, patterns: Sequence[str]) -> None:
        """Create or refresh the integration's user and its bound event queue (idempotent)."""
        queue = integrations.event_queue(tenant, name)
        try:
            self._redis.execute_command("ACL", "SETUSER", self.user(tenant, name), "on", "resetpass",
                                        f"#{password_sha256}",
                                        *integrations.acl_rules(tenant, name, self._request_queue))
        except redis.RedisError as exc:
            raise TemporaryError(f"cannot set the Redis user of integration {tenant}/{name}: {exc}") from None
        try:
            with Connection(self._url, connect_timeout=self._timeout,
                            transport_options={"socket_timeout": self._timeout}) as conn:
                Queue(queue, bindings=[binding(self._exchange, routing_key=p) for p in patterns],
                      durable=True)(conn.default_channel).declare()
        except Exception as exc:  # kombu raises transport-specific classes
            raise TemporaryError(f"cannot bind the event queue of integration {tenant}/{name}: {exc}") from None
        # Patterns no longer asked for (never happens today: they are fixed at creation).
        self._unbind(queue, keep=set(patterns))

    def _unbind(self, queue: str, *, keep: frozenset[str] | set[str] = frozenset()) -> None:
        table = f"_kombu.binding.{integrations.EVENT_EXCHANGE}"
        sep = integrations.KOMBU_SEP
        members: set[bytes] = self._redis.smembers(table)  # type: ignore[assignment]  # sync client
        for member in members:
            text = member.decode(errors="replace")
            routing_key, _, rest = text.partition(sep)
            if rest.rpartition(sep)[2] == queue and routing_key not in keep:
                self._redis.srem(table, member)

    def forget(self, tenant: str, name: str) -> None:
        """Remove the user (Redis closes its connections), the queue's bindings and its messages."""
        queue = integrations.event_queue(tenant, name)
        try:
            self._redis.execute_command("ACL", "DELUSER", self.user(tenant, name))
            self._unbind(queue)
            self._redis.delete(queue, *(f"{queue}{integrations.KOMBU_SEP}{p}" for p in range(10)))
        except redis.RedisError as exc:
            raise TemporaryError(f"cannot remove integration {tenant}/{name} from Redis: {exc}") from None
        log.info("integration %s/%s: redis user and event queue removed", tenant, name)

    def users(self) -> set[str]:
        """Names of the integration users that exist in Redis (for the worker's sweep)."""
        prefix = integrations.integration_user(self._platform, "", "")[:-1]  # "<platform>.integration."
        try:
            names = self._redis.execute_command("ACL", "USERS")
        except redis.RedisError as exc:
            raise TemporaryError(f"cannot list Redis users: {exc}") from None
        decoded = (n.decode() if isinstance(n, bytes) else str(n) for n in names)
        return {n for n in decoded if n.startswith(prefix)}

    def delete_user(self, user: str) -> None:
        try:
            self._redis.execute_command("ACL", "DELUSER", user)
        except redis.RedisError as exc:
            raise TemporaryError(f"cannot delete Redis user {user}: {exc}") from None
