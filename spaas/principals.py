"""Presented credentials -> `Principal`, shared by the API's guard and the proxy.

The API takes bearer tokens; the proxy also takes `Basic user:token` (the user must be the
token's owner, `admin` for the bootstrap token) and a session cookie, and then forwards the
token as a bearer token, so both decide with the same code.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable
from urllib.parse import unquote

from spaas import auth, authz
from spaas.auth import TokenRecord
from spaas.authz import Principal
from spaas.records import BadRecord, MemberRecord, decode
from spaas.store import Entry

BOOTSTRAP_NAME = "admin"


def principal_for(token: str | None, *, bootstrap_hash: str, lookup: Callable[[str], TokenRecord | None],
                  admin_users: Iterable[str] = (), admin_groups: Iterable[str] = ()) -> Principal | None:
    """The principal behind a token; None for a missing, unknown, revoked or expired one."""
    if not token:
        return None
    if bootstrap_hash and auth.matches(token, bootstrap_hash):
        return Principal(BOOTSTRAP_NAME, cluster_admin=True, kind="bootstrap")
    record = lookup(token)
    if record is None:
        return None
    admin = authz.is_cluster_admin(record.user, record.groups, admin_users=admin_users, admin_groups=admin_groups)
    return Principal(record.user, groups=record.groups, cluster_admin=admin, kind=record.kind, token_id=record.id)


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(user, secret) of an `Authorization`/`Proxy-Authorization: Basic ...` value; None otherwise."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, secret = text.partition(":")
    return (user, secret) if sep and user and secret else None


def members_from_entries(entries: Iterable[Entry], prefix: str) -> dict[tuple[str, str], list[str]]:
    """("user" | "group", name) -> roles, from the entries under `Keys.members(tenant)` (= `prefix`)."""
    # A malformed grant grants nothing.
    members: dict[tuple[str, str], list[str]] = {}
    for entry in entries:
        grant = decode(MemberRecord, entry)
        if isinstance(grant, BadRecord):
            continue
        kind, _, quoted = entry.key[len(prefix):].partition("/")
        members[(kind, unquote(quoted))] = [r.value for r in grant.roles]
    return members
