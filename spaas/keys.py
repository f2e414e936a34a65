"""The etcd key layout, in one place.

Each key has one writer (the design's "one owner per field"):

    {p}/tenants/{t}                      tenant record                 api
    {p}/sigs/{t}/{s}/spec                SIG spec + generation         api
    {p}/sigs/{t}/{s}/build               build status                  builder
    {p}/sigs/{t}/{s}/status              phase, workers, endpoints     scaler
    {p}/secrets/{t}/{s}                  the SIG's Spark secret        api (never served)
    {p}/apps/{t}/{s}/{id}/spec           application request           api (+ `session` for Livy sessions)
    {p}/apps/{t}/{s}/{id}/state          runtime state                 agent (api only to kill a never-started app)
    {p}/apps/{t}/{s}/{id}/kill           kill request                  api
    {p}/apps/{t}/{s}/{id}/heartbeat      last client heartbeat         api (sessions only)
    {p}/apps/{t}/{s}/{id}/stmts/{n}/code      statement code           api
    {p}/apps/{t}/{s}/{id}/stmts/{n}/cancel    cancel request           api
    {p}/apps/{t}/{s}/{id}/stmts/{n}/result    state and output         agent
    {p}/hosts/{t}/{s}/{host}             host -> ip, ports (leased)    agent
    {p}/routes/{t}/{s}/{host}            verified route (ip, ports)    scaler (SIG users cannot write it)
    {p}/builds/{key}                     build record by build key     builder
    {p}/build-locks/{key}                build in flight (leased)      builder
    {p}/auth/bootstrap                   hash of the admin token       api
    {p}/auth/tokens/{sha256}             login / API token (leased)    api
    {p}/auth/user-tokens/{user}/{id}     a user's API tokens (leased)  api
    {p}/members/{t}/{user|group}/{name}  roles granted in a tenant     api
    {p}/audit/{day}/{ms}-{rand}          audit record                  api (pruned by day)
    {p}/audit-days/{day}                 index of days with records    api
    {p}/integrations/{t}/{name}          integration (password hash)   api
    {p}/idempotency/{t}/{sha256}         first result of a keyed request  api (leased)
    {p}/lifecycle/cursor                 last revision the event publisher published  integrations
    {p}/notebooks/{t}/{s}/{user}         notebook demand: requested_at, proxy (activity), api/scaler delete
                                         last_activity                 (stop, cull)
    {p}/notebook-tokens/{t}/{s}/{user}   the server's token, container scaler (outside the SIG's etcd range)
    {p}/pool/skeletons/{id}              a warm-pool skeleton: shape, artifact  scaler
    {p}/pool/secrets/{id}                the skeleton's own Spark secret  scaler (read by its agents)
    {p}/pool/claims/{id}                 who claimed it (put-if-absent: the lock)  scaler
    {p}/pool/hosts/{id}/{host}           a pooled container's host record (leased)  its agent
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


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

    def all_apps(self) -> str:
        return f"{self.prefix}/apps/"

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

    def app_heartbeat(self, tenant: str, sig: str, app_id: str) -> str:
        return f"{self.prefix}/apps/{tenant}/{sig}/{app_id}/heartbeat"

    def app_stmts(self, tenant: str, sig: str, app_id: str) -> str:
        return f"{self.prefix}/apps/{tenant}/{sig}/{app_id}/stmts/"

    def app_stmt(self, tenant: str, sig: str, app_id: str, stmt: int, part: str) -> str:
        """`part` is code, cancel or result; ids are zero-padded so etcd lists them in order."""
        return f"{self.prefix}/apps/{tenant}/{sig}/{app_id}/stmts/{stmt:08d}/{part}"

    def all_hosts(self) -> str:
        return f"{self.prefix}/hosts/"

    def hosts(self, tenant: str, sig: str) -> str:
        return f"{self.prefix}/hosts/{tenant}/{sig}/"

    def host(self, tenant: str, sig: str, host: str) -> str:
        return f"{self.prefix}/hosts/{tenant}/{sig}/{host}"

    def all_routes(self) -> str:
        return f"{self.prefix}/routes/"

    def routes(self, tenant: str, sig: str) -> str:
        return f"{self.prefix}/routes/{tenant}/{sig}/"

    def route(self, tenant: str, sig: str, host: str) -> str:
        """The proxy's route to a host record's ports, kept only where the runtime confirms them."""
        return f"{self.prefix}/routes/{tenant}/{sig}/{host}"

    def build(self, build_key: str) -> str:
        return f"{self.prefix}/builds/{build_key}"

    def builds(self) -> str:
        return f"{self.prefix}/builds/"

    def build_lock(self, build_key: str) -> str:
        return f"{self.prefix}/build-locks/{build_key}"

    def bootstrap_token(self) -> str:
        return f"{self.prefix}/auth/bootstrap"

    def token(self, token_hash: str) -> str:
        return f"{self.prefix}/auth/tokens/{token_hash}"

    def user_tokens(self, user: str) -> str:
        return f"{self.prefix}/auth/user-tokens/{quote(user, safe='')}/"

    def user_token(self, user: str, token_id: str) -> str:
        return f"{self.prefix}/auth/user-tokens/{quote(user, safe='')}/{token_id}"

    def all_members(self) -> str:
        return f"{self.prefix}/members/"

    def members(self, tenant: str) -> str:
        return f"{self.prefix}/members/{tenant}/"

    def member(self, tenant: str, kind: str, name: str) -> str:
        """`kind` is "user" or "group"; names are quoted so any LDAP name stays one key segment."""
        return f"{self.prefix}/members/{tenant}/{kind}/{quote(name, safe='')}"

    def audit(self) -> str:
        return f"{self.prefix}/audit/"

    def audit_day(self, day: str) -> str:
        return f"{self.prefix}/audit/{day}/"

    def audit_days(self) -> str:
        return f"{self.prefix}/audit-days/"

    def audit_day_marker(self, day: str) -> str:
        """One small key per day with audit records, so pruning and reading never list whole days blindly."""
        return f"{self.prefix}/audit-days/{day}"

    def tokens(self) -> str:
        return f"{self.prefix}/auth/tokens/"

    def all_user_tokens(self) -> str:
        return f"{self.prefix}/auth/user-tokens/"

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

    def integrations(self, tenant: str) -> str:
        return f"{self.prefix}/integrations/{tenant}/"

    def all_integrations(self) -> str:
        return f"{self.prefix}/integrations/"

    def integration(self, tenant: str, name: str) -> str:
        return f"{self.prefix}/integrations/{tenant}/{name}"

    def idempotency(self, tenant: str, digest: str) -> str:
        """`digest` = sha256(principal, client key): one principal's keys never collide with another's."""
        return f"{self.prefix}/idempotency/{tenant}/{digest}"

    def lifecycle_cursor(self) -> str:
        return f"{self.prefix}/lifecycle/cursor"
    # -- notebooks (spaas/notebooks.py) ------------------------------------------------------
    def all_notebooks(self) -> str:
        return f"{self.prefix}/notebooks/"

    def notebooks(self, tenant: str, sig: str) -> str:
        return f"{self.prefix}/notebooks/{tenant}/{sig}/"

    def notebook(self, tenant: str, sig: str, user: str) -> str:
        return f"{self.prefix}/notebooks/{tenant}/{sig}/{quote(user, safe='@._-')}"

    def all_notebook_tokens(self) -> str:
        return f"{self.prefix}/notebook-tokens/"

    def notebook_token(self, tenant: str, sig: str, user: str) -> str:
        return f"{self.prefix}/notebook-tokens/{tenant}/{sig}/{quote(user, safe='@._-')}"

    # -- warm pool (services/scaler/pool.py, services/agent/pool.py) -----------------------------
    def pool_skeletons(self) -> str:
        return f"{self.prefix}/pool/skeletons/"

    def pool_skeleton(self, skeleton: str) -> str:
        return f"{self.prefix}/pool/skeletons/{skeleton}"

    def pool_secret(self, skeleton: str) -> str:
        return f"{self.prefix}/pool/secrets/{skeleton}"

    def pool_claims(self) -> str:
        return f"{self.prefix}/pool/claims/"

    def pool_claim(self, skeleton: str) -> str:
        return f"{self.prefix}/pool/claims/{skeleton}"

    def all_pool_hosts(self) -> str:
        return f"{self.prefix}/pool/hosts/"

    def pool_hosts(self, skeleton: str) -> str:
        return f"{self.prefix}/pool/hosts/{skeleton}/"

    def pool_host(self, skeleton: str, host: str) -> str:
        return f"{self.prefix}/pool/hosts/{skeleton}/{host}"
