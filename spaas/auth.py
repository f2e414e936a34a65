"""Bearer tokens: generation, hashing and the bootstrap admin token.

Only hashes are stored (etcd `{p}/auth/bootstrap`); the plaintext of the bootstrap token is
shown once, written to a 0600 file whose path the README names.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from spaas.errors import Conflict
from spaas.keys import Keys
from spaas.store import Store

log = logging.getLogger(__name__)


def new_token() -> str:
    return "spaas_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def matches(token: str, token_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), token_hash)


def _write_secret_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    os.chmod(path, 0o600)


def ensure_bootstrap_token(store: Store, keys: Keys, token_file: Path, *, preset: str = "") -> str:
    """Make sure a bootstrap admin token exists; returns its hash.

    `preset` (from settings) wins and replaces the stored hash. Otherwise the first API replica
    to start creates one (put-if-absent, so replicas cannot race) and writes it to `token_file`.
    """
    key = keys.bootstrap_token()
    if preset:
        digest = hash_token(preset)
        store.put(key, {"hash": digest})
        _write_secret_file(token_file, preset)
        return digest
    current = store.get(key)
    if current is not None:
        if not token_file.exists():
            log.warning("admin token file %s is missing; the stored token still works", token_file)
        return str(current.value["hash"])
    token = new_token()
    try:
        store.create(key, {"hash": hash_token(token)})
    except Conflict:
        entry = store.get(key)
        assert entry is not None
        return str(entry.value["hash"])
    _write_secret_file(token_file, token)
    log.info("generated the bootstrap admin token; written to %s", token_file)
    return hash_token(token)
