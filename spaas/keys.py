"""The etcd key layout, in one place.

Each key has one writer (the design's "one owner per field"):

    {p}/tenants/{t}                      tenant record                 api
    {p}/sigs/{t}/{s}/spec                SIG spec + generation         api
    {p}/sigs/{t}/{s}/build               build status                  builder
    {p}/sigs/{t}/{s}/status              phase, workers, endpoints     scaler
    {p}/secrets/{t}/{s}                  the SIG's Spark secret        api (never served)
    {p}/apps/{t}/{s}/{id}/spec           application request           api
    {p}/apps/{t}/{s}/{id}/state          runtime state                 agent (api only to kill a never-started app)
    {p}/apps/{t}/{s}/{id}/kill           kill request                  api
    {p}/hosts/{t}/{s}/{host}             host -> ip, ports (leased)    agent
    {p}/builds/{key}                     build record by build key     builder
    {p}/build-locks/{key}                build in flight (leased)      builder
    {p}/auth/bootstrap                   hash of the admin token       api
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "/spaas"

    def tenants(self) -> str:
        return f"{self.prefix}/tenants/"

    def tenant(self, tenant: str) -> str:
        return f"{self.prefix}/tenants/{tenant}"

    def all_sigs(self) -> str:
        return f"{self.prefix}/sigs/"

    def sigs(self, tenant: str) -> str:
        return f"{self.prefix}/sigs/{tenant}/"

    def sig(self, tenant: str, sig: str) -> str:
        return f"{self.prefix}/sigs/{tenant}/{sig}/"

    def sig_spec(self, tenant: str, sig: str) -> str:
        return f"{self.prefix}/sigs/{tenant}/{sig}/spec"

    def sig_build(self, tenant: str, sig: str) -> str:
        return f"{self.prefix}/sigs/{tenant}/{sig}/build"

    def sig_status(self, tenant: str, sig: str) -> str:
        return f"{self.prefix}/sigs/{tenant}/{sig}/status"

    def secret(self, tenant: str, sig: str) -> str:
        return f"{self.prefix}/secrets/{tenant}/{sig}"

    def apps(self, tenant: str, sig: str) -> str:
        return f"{self.prefix}/apps/{tenant}/{sig}/"

    def app(self, tenant: str, sig: str, app_id: str) -> str:
        return f"{self.prefix}/apps/{tenant}/{sig}/{app_id}/"

    def app_spec(self, tenant: str, sig: str, app_id: str) -> str:
        return f"{self.prefix}/apps/{tenant}/{sig}/{app_id}/spec"

    def app_state(self, tenant: str, sig: str, app_id: str) -> str:
        return f"{self.prefix}/apps/{tenant}/{sig}/{app_id}/state"

    def app_kill(self, tenant: str, sig: str, app_id: str) -> str:
        return f"{self.prefix}/apps/{tenant}/{sig}/{app_id}/kill"

    def all_hosts(self) -> str:
        return f"{self.prefix}/hosts/"

    def hosts(self, tenant: str, sig: str) -> str:
        return f"{self.prefix}/hosts/{tenant}/{sig}/"

    def host(self, tenant: str, sig: str, host: str) -> str:
        return f"{self.prefix}/hosts/{tenant}/{sig}/{host}"

    def build(self, build_key: str) -> str:
        return f"{self.prefix}/builds/{build_key}"

    def build_lock(self, build_key: str) -> str:
        return f"{self.prefix}/build-locks/{build_key}"

    def bootstrap_token(self) -> str:
        return f"{self.prefix}/auth/bootstrap"

    def split_sig_key(self, key: str) -> tuple[str, str, str]:
        """`{p}/sigs/t/s/spec` -> ("t", "s", "spec")."""
        rest = key[len(self.all_sigs()):]
        tenant, sig, part = rest.split("/", 2)
        return tenant, sig, part

    def split_app_key(self, key: str, tenant: str, sig: str) -> tuple[str, str]:
        """`{p}/apps/t/s/id/spec` -> ("id", "spec")."""
        rest = key[len(self.apps(tenant, sig)):]
        app_id, part = rest.split("/", 1)
        return app_id, part
