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
    users, groups = tuple(admin_users), tuple(admin_groups)
    found = _built.get(record.token_hash)
    if found is not None and found[0] is record and found[1] == users and found[2] == groups:
        return found[3]  # the same verified record object (spaas.auth keeps one per stored entry)
    admin = authz.is_cluster_admin(record.user, record.groups, admin_users=users, admin_groups=groups)
    principal = Principal(record.user, groups=record.groups, cluster_admin=admin, kind=record.kind, token_id=record.id)
    if len(_built) >= _BUILT_MAX:
        _built.clear()
    _built[record.token_hash] = (record, users, groups, principal)
    return principal


# Principals built from verified token records, by token hash, beside the record object and the
# settings they were built from (a principal is a pure function of those). Bounded.
_built: dict[str, tuple[TokenRecord, tuple[str, ...], tuple[str, ...], Principal]] = {}
_BUILT_MAX = 100_000


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
