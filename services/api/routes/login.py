"""`/api/v1/login` (LDAP login, logout) and `/api/v1/tokens` (personal API tokens for scripts).

Tokens are shown once, in the response that creates them; only their SHA-256 is stored. Every
failed login answers the same 401, whatever failed; failures are counted per user name and per
client address (`RedisLoginLimiter`), and past the limit logins answer 429 with Retry-After.
A login name is normalised once (`normalize_login`: trimmed, case-folded, no control characters).
A personal token is minted with the caller's token and never outlives it: its expiry is capped at
the parent's, and revoking or logging out the parent revokes it.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from flask import Blueprint, g, request

from spaas.auth import Identity, normalize_login
from spaas.authz import fold
from spaas.errors import Invalid, NotFound, Unauthorized
from spaas.model import LoginRequest, TokenRequest

from services.api.deps import deps, json_body
from services.api.errors import TooManyRequests
from services.api.guard import action, bearer_token, current_principal

log = logging.getLogger(__name__)
bp = Blueprint("login", __name__)
TOKEN_ID_RE = re.compile(r"^[0-9a-f]{16}$")


@bp.post("/login")
@action("login.create")
def login() -> tuple[dict[str, Any], int]:
    d = deps()
    body = LoginRequest.model_validate(json_body())
    # Normalised once: this form is the rate-limit key, what LDAP is asked, and the principal.
    username = normalize_login(body.username)
    address = request.remote_addr or "unknown"
    g.login_name = username
    wait = d.limiter.blocked_for(username, address)
    if wait:
        log.warning("login: too many failures for this user name or address; refused for %ds", wait)
        raise TooManyRequests(f"too many failed logins; try again in {wait} s", retry_after=wait)
    try:
        found = d.authenticator.authenticate(username, body.password)
    except Unauthorized:
        d.limiter.failed(username, address)
        log.info("login: failed for %r from %s", username, address)
        raise Unauthorized("invalid credentials") from None
    d.limiter.succeeded(username)
    identity = Identity(username, frozenset(fold(g) for g in found.groups))
    issued = d.tokens.issue(identity, kind="session", ttl_s=d.settings.session_ttl_s)
    log.info("login: %s logged in (%d groups)", identity.name, len(identity.groups))
    return {"token": issued.token, "expires_at": issued.expires_at, "user": identity.name,
            "groups": sorted(identity.groups)}, 200


@bp.delete("/login")
@action("login.delete")
def logout() -> dict[str, Any]:
    d = deps()
    principal = current_principal()
    if principal.kind == "bootstrap":
        raise Invalid("the bootstrap admin token is not revoked by logging out; set SPAAS_ADMIN_TOKEN to replace it",
                      field="Authorization")
    record = d.tokens.lookup(bearer_token() or "")
    if record is not None:
        d.tokens.revoke(record)
    return {"revoked": True}


@bp.post("/tokens")
@action("token.create")
def create_token() -> tuple[dict[str, Any], int]:
    d = deps()
    principal = current_principal()
    body = TokenRequest.model_validate(json_body())
    if principal.kind == "bootstrap":
        raise Invalid("the bootstrap admin has no personal tokens; log in with an LDAP account", field="Authorization")
    ttl = body.expires_in_s or d.settings.api_token_max_ttl_s
    if ttl > d.settings.api_token_max_ttl_s:
        raise Invalid(f"expires_in_s may be at most {d.settings.api_token_max_ttl_s}", field="expires_in_s")
    # Minted with the caller's token: it never outlives that token and is revoked with it.
    parent = d.tokens.lookup(bearer_token() or "")
    if parent is None:
        raise Unauthorized("a valid bearer token is required")
    issued = d.tokens.issue(Identity(principal.name, principal.groups), kind="api", ttl_s=ttl, name=body.name,
                            parent=parent)
    return {"id": issued.id, "name": body.name, "token": issued.token, "created_at": time.time(),
            "expires_at": issued.expires_at}, 201


@bp.get("/tokens")
@action("token.list")
def list_tokens() -> dict[str, Any]:
    principal = current_principal()
    if principal.kind == "bootstrap":
        return {"tokens": []}
    return {"tokens": deps().tokens.api_tokens(principal.name)}


@bp.delete("/tokens/<token_id>")
@action("token.delete")
def delete_token(token_id: str) -> dict[str, Any]:
    principal = current_principal()
    if principal.kind == "bootstrap" or not TOKEN_ID_RE.match(token_id) \
            or not deps().tokens.revoke_api_token(principal.name, token_id):
        raise NotFound(f"no token {token_id!r}", field="id")
    return {"id": token_id, "revoked": True}
