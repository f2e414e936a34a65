"""Where a request goes: pure decisions over the route table, table-tested.

Ingress (origin-form targets, one port, path routing):

    /api/v1/...                      -> the API, unchanged (it authenticates by itself)
    /platform/session, /platform/login  the proxy's own session endpoints (see session.py)
    /platform/...                    -> the console (served by the API), for an authenticated caller only
                                        (a browser without a session is sent to /platform/login); it
                                        gets the caller's token as a bearer header and checks CSRF itself
    /sig/{t}/{s}/history/...         -> the SIG's history server (verified route of role "history"), the prefix
                                        /sig/{t}/{s}/history stripped and sent as X-Forwarded-Context
                                        (Spark writes every link under it); 503 HistoryStarting
                                        while the SIG's spec runs one that has no ready route yet,
                                        404 NotEnabled when the SIG runs none
    /sig/{t}/{s}/notebooks/{user}/.. -> that user's Jupyter server, the path kept (its base_url), with
                                        the server's token injected; only for that user (anyone else:
                                        404 as for a missing SIG); 503 NotebookStarting while it starts
                                        (the proxy records the demand the scaler acts on); 404
                                        NotEnabled when the SIG has notebooks off
    /sig/{t}/{s}/...                 -> the SIG's Spark master UI, the prefix stripped (the master,
                                        its workers and drivers run with spark.ui.reverseProxy and
                                        reverseProxyUrl=/sig/{t}/{s}/, so every link stays under it
                                        and the master proxies /proxy/<worker|app id>/ itself)

Forward (absolute-form targets, the seed's HttpProxy): only a registered (host, port) of a
container of a SIG the caller may see; a path under that SIG's /sig/{t}/{s}/ goes to its master
UI as in ingress mode, so the reverse-proxy links work in a browser set to use the proxy too.

A SIG of a tenant the caller has no role in answers exactly what a SIG that does not exist
answers (404); in forward mode both a foreign and an unknown host get the same 403.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from spaas import authz
from spaas.authz import Decision, Principal

from services.proxy.table import RouteTable

NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
LOGIN_PATH = "/platform/login"
SESSION_PATHS = ("/platform/session", LOGIN_PATH)


@dataclass(frozen=True)
class Upstream:
    kind: str  # "api" | "console" | "sig" | "history" | "forward"
    host: str
    port: int
    target: str  # what the upstream request line carries (path and query)
    prefix: str = ""  # public path prefix of a SIG ("/sig/t/s"), for Location rewriting
    tenant: str = ""
    sig: str = ""
    # kind "notebook": the server's token (sent as `Authorization: token ...`) and its user.
    token: str = ""
    user: str = ""


@dataclass(frozen=True)
class Denied:
    status: int
    code: str
    message: str
    field: str | None = None
    location: str = ""  # a redirect
    challenge: str = ""  # WWW-Authenticate (401) or Proxy-Authenticate (407)


@dataclass(frozen=True)
class Local:
    """Served by the proxy itself (health, session endpoints)."""

    name: str


CHALLENGE = 'Basic realm="spaas", charset="UTF-8"'


def may_see(principal: Principal, table: RouteTable, tenant: str) -> bool:
    """Whether the principal holds any role in the tenant (cluster admins see every tenant)."""
    roles = authz.roles_in_tenant(table.members.get(tenant, {}), principal)
    return authz.decide("sig.read", principal, roles) is Decision.ALLOW


def _not_found(tenant: str, sig: str) -> Denied:
    # Word for word the same for a missing SIG and one of another tenant.
    return Denied(404, "NotFound", f"SIG {sig!r} not found in tenant {tenant!r}", "sig")


def _unsafe(path: str) -> bool:
    segments = path.split("/")
    return ".." in segments or "." in segments or "%2f" in path.lower() or "\\" in path


def unauthenticated(path_and_query: str, *, browser: bool) -> Denied:
    if browser:
        return Denied(302, "LoginRequired", "log in first", location=f"{LOGIN_PATH}?next={quote(path_and_query, safe='')}")
    return Denied(401, "Unauthorized", "a valid token is required (Bearer, Basic user:token or a session cookie)",
                  challenge=CHALLENGE)


def route_ingress(target: str, principal: Principal | None, table: RouteTable, *, api: tuple[str, int],
                  browser: bool = False) -> Upstream | Denied | Local:
    path, _, query = target.partition("?")
    if path == "/healthz":
        return Local("healthz")
    if path == "/api/v1" or path.startswith("/api/v1/"):
        return Upstream("api", api[0], api[1], target)
    if path in SESSION_PATHS:
        return Local(path.rsplit("/", 1)[1])
    if path == "/platform" or path.startswith("/platform/"):
        if principal is None:
            return unauthenticated(target, browser=browser)
        return Upstream("console", api[0], api[1], target)
    if not path.startswith("/sig/"):
        return Denied(404, "NotFound", "no such path: the proxy serves /api/v1/, /platform/ and /sig/{tenant}/{sig}/")
    if _unsafe(path):
        return Denied(400, "BadPath", "the path may not contain '.' or '..' segments or encoded slashes", "path")
    parts = path.split("/", 4)  # "", "sig", t, s, rest
    if len(parts) < 4 or not parts[3]:
        return Denied(404, "NotFound", "address a SIG as /sig/{tenant}/{sig}/", "sig")
    tenant, sig = parts[2], parts[3]
    if principal is None:
        return unauthenticated(target, browser=browser)
    if not NAME.match(tenant) or not NAME.match(sig) or not may_see(principal, table, tenant) \
            or (tenant, sig) not in table.sigs:
        return _not_found(tenant, sig)
    prefix = f"/sig/{tenant}/{sig}"
    if len(parts) == 4:
        return Denied(302, "Redirect", "the SIG's UI is under its path with a trailing slash",
                      location=prefix + "/" + (f"?{query}" if query else ""))
    rest = parts[4]
    first = rest.split("/", 1)[0]
    if first == "history":
        return _history(table, tenant, sig, rest, query)
    if first == "notebooks":
        return route_notebook(tenant, sig, rest, query, principal, table)
    master = table.masters.get((tenant, sig))
    if master is None:
        return Denied(503, "NotRunning", f"SIG {sig!r} has no running Spark master yet; see its status in the API",
                      "sig")
    return Upstream("sig", master[0], master[1], "/" + rest + (f"?{query}" if query else ""), prefix=prefix,
                    tenant=tenant, sig=sig)


def _history(table: RouteTable, tenant: str, sig: str, rest: str, query: str) -> Upstream | Denied:
    """`rest` is "history" or "history/...": the SIG's history server, same authorization as its
    master UI (checked by the caller)."""
    prefix = f"/sig/{tenant}/{sig}/history"
    if rest == "history":
        return Denied(302, "Redirect", "the history server is under its path with a trailing slash",
                      location=prefix + "/" + (f"?{query}" if query else ""))
    upstream = table.endpoints.get((tenant, sig, "history", ""))  # the scaler's verified route record
    if upstream is None and (tenant, sig) in table.history_sigs:
        return Denied(503, HISTORY_STARTING, f"the history server of SIG {sig!r} is starting (it starts once the "
                                             f"SIG's master is ready); retry shortly", "history")
    if upstream is None:
        return Denied(404, "NotEnabled", f"SIG {sig!r} runs no history server (set history.enabled in its spec; "
                                         f"it starts once the SIG's master is ready)", "history")
    return Upstream("history", upstream[0], upstream[1], rest[len("history"):] + (f"?{query}" if query else ""),
                    prefix=prefix, tenant=tenant, sig=sig)


STARTING = "NotebookStarting"
HISTORY_STARTING = "HistoryStarting"
# Denials that mean "enabled, coming up": 503 with Retry-After, a self-reloading page for a browser.
STARTING_CODES = frozenset({STARTING, HISTORY_STARTING})


def route_notebook(tenant: str, sig: str, rest: str, query: str, principal: Principal,
                   table: RouteTable) -> Upstream | Denied:
    """`rest` = "notebooks/{user}/...": the caller's own server only."""
    if (tenant, sig) not in table.notebook_sigs:
        return Denied(404, "NotEnabled", f"notebooks are not enabled on SIG {sig!r}", "notebooks")
    parts = rest.split("/", 2)  # "notebooks", user, rest
    me = authz.fold(principal.name)
    if len(parts) < 2 or not parts[1]:
        return Denied(302, "Redirect", "your notebook server", location=f"/sig/{tenant}/{sig}/notebooks/{quote(me, safe='@')}/")
    if authz.fold(unquote(parts[1])) != me:
        return _not_found(tenant, sig)  # someone else's server: exactly what a missing SIG answers
    prefix = f"/sig/{tenant}/{sig}/notebooks/{quote(me, safe='@')}"
    if parts[1] != quote(me, safe="@") or len(parts) == 2:
        tail = "/" + parts[2] if len(parts) == 3 else "/"
        return Denied(302, "Redirect", "your notebook server", location=prefix + tail + (f"?{query}" if query else ""))
    server = table.notebooks.get((tenant, sig, me))
    if server is None:
        return Denied(503, STARTING, f"your notebook server on SIG {sig!r} is starting; retry shortly", "notebooks")
    return Upstream("notebook", server.ip, server.port, prefix + "/" + parts[2] + (f"?{query}" if query else ""),
                    prefix=prefix, tenant=tenant, sig=sig, token=server.token, user=me)


def same_origin(origin: str, host: str) -> bool:
    """Whether a browser's `Origin` names the host it sent the request to (cookie-authenticated
    changes and WebSockets to a notebook server must come from the platform's own pages)."""
    if not origin or not host or origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == host.lower()


FORWARD_REFUSED = "is not a Spark UI of a SIG you may open through this proxy"


def route_forward(host: str, port: int, target: str, principal: Principal | None,
                  table: RouteTable) -> Upstream | Denied:
    """An absolute-form request (or CONNECT, with target "") for host:port."""
    if principal is None:
        return Denied(407, "ProxyAuthRequired", "Proxy-Authorization: Basic user:token is required",
                      challenge=CHALLENGE)
    found = table.hosts.get((host.lower(), port))
    if found is None or not may_see(principal, table, found.tenant) or (found.tenant, found.sig) not in table.sigs:
        return Denied(403, "ProxyRefused", f"{host}:{port} {FORWARD_REFUSED}", "host")
    path = target.partition("?")[0]
    prefix = f"/sig/{found.tenant}/{found.sig}"
    if path == prefix or path.startswith(prefix + "/"):
        master = table.masters.get((found.tenant, found.sig))
        if master is None:
            return Denied(503, "NotRunning", f"SIG {found.sig!r} has no running Spark master yet", "sig")
        rest = target[len(prefix):] or "/"
        return Upstream("forward", master[0], master[1], rest if rest.startswith("/") else "/" + rest,
                        tenant=found.tenant, sig=found.sig)
    return Upstream("forward", found.ip, found.port, target or "/", tenant=found.tenant, sig=found.sig)
