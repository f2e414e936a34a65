"""Per-SIG storage on a filesystem shared by the API and the SIG's containers.

Layout under `root`:  {tenant}/{sig}/files/...   uploaded by tenants
                      {tenant}/{sig}/apps/{id}/driver.log   written by the master's agent
Paths that tenants pass (application `file`, `pyFiles`) are relative to the SIG root and may
not leave it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from spaas.errors import Invalid

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class SigStorage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def sig_dir(self, tenant: str, sig: str) -> Path:
        return self.root / tenant / sig

    def files_dir(self, tenant: str, sig: str) -> Path:
        return self.sig_dir(tenant, sig) / "files"

    def app_dir(self, tenant: str, sig: str, app_id: str) -> Path:
        return self.sig_dir(tenant, sig) / "apps" / app_id

    def driver_log(self, tenant: str, sig: str, app_id: str) -> Path:
        return self.app_dir(tenant, sig, app_id) / "driver.log"

    def save_file(self, tenant: str, sig: str, filename: str, data: bytes) -> str:
        """Store an upload; returns its SIG-relative path (`files/<name>`)."""
        name = filename or ""
        if not SAFE_NAME.match(name) or ".." in name or os.path.basename(name) != name:
            raise Invalid(
                "file name must be 1-128 characters of letters, digits, '.', '_' or '-', not starting with a dot",
                field="file",
            )
        target_dir = self.files_dir(tenant, sig)
        target_dir.mkdir(parents=True, exist_ok=True)
        tmp = target_dir / f".{name}.upload"
        tmp.write_bytes(data)
        tmp.replace(target_dir / name)
        return f"files/{name}"

    def resolve(self, tenant: str, sig: str, rel: str, *, field: str) -> Path:
        """The absolute path of a SIG-relative path; `Invalid` if it escapes the SIG or is missing."""
        base = self.sig_dir(tenant, sig).resolve()
        candidate = (base / rel).resolve()
        if rel.startswith("/") or base not in candidate.parents or not candidate.is_file():
            raise Invalid(f"{rel!r} is not a file in this SIG's storage (upload it with POST .../files)", field=field)
        return candidate

    def delete_sig(self, tenant: str, sig: str) -> None:
        shutil.rmtree(self.sig_dir(tenant, sig), ignore_errors=True)
