"""Per-SIG storage on a filesystem shared by the API and the SIG's containers.

Layout under `root`:  {tenant}/{sig}/files/...   uploaded by tenants
                      {tenant}/{sig}/apps/{id}/driver.log   written by the master's agent
                      {tenant}/{sig}/eventlog/<spark app id>  Spark event logs of every driver, read
                                                              by the SIG's history server
                      {tenant}/{sig}/notebooks/{user}/...   a user's notebooks (their Jupyter root)
Paths that tenants pass (application `file`, `pyFiles`) are relative to the SIG root and may
not leave it. Everything below `root` can be changed by tenant code (a SIG container has its
SIG's directory mounted read-write), so every access goes through `spaas.safefs`: no link is
followed, no special file is opened for reading, reads are bounded.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path

from spaas import safefs
from spaas.errors import Invalid
from spaas.safefs import UnsafeFile

log = logging.getLogger(__name__)

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DRIVER_LOG = "driver.log"
EVENT_LOG_DIR = "eventlog"


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
        return self.app_dir(tenant, sig, app_id) / DRIVER_LOG

    def event_log_dir(self, tenant: str, sig: str) -> Path:
        """Where the SIG's drivers write Spark event logs (`spark.eventLog.dir`)."""
        return self.sig_dir(tenant, sig) / EVENT_LOG_DIR

    def ensure_event_log_dir(self, tenant: str, sig: str) -> Path:
        """Make the event log directory (Spark refuses to start a driver without it); a link
        planted at its name is refused (`UnsafeFile`), never followed."""
        with safefs.directory(self.root, self._rel(tenant, sig, EVENT_LOG_DIR), create=True):
            pass
        return self.event_log_dir(tenant, sig)

    @staticmethod
    def _rel(tenant: str, sig: str, *rest: str) -> list[str]:
        return [tenant, sig, *rest]

    def notebook_dir(self, tenant: str, sig: str, user: str) -> Path:
        """A user's notebook folder (`notebooks/<user>`, spaas.notebooks.user_dir), made if missing
        with no link followed on the way; it outlives the user's Jupyter server."""
        from spaas.notebooks import user_dir

        rel = self._rel(tenant, sig, "notebooks", user_dir(user))
        with safefs.directory(self.root, rel, create=True):
            pass
        return self.root.joinpath(*rel)

    def ensure_dir(self, tenant: str, sig: str, *parts: str) -> Path:
        """Make a directory of the SIG's storage (the SIG's own with no `parts`), no link followed
        on the way; returns its path."""
        with safefs.directory(self.root, self._rel(tenant, sig, *parts), create=True):
            pass
        return self.sig_dir(tenant, sig).joinpath(*parts)

    def ensure_sig_dir(self, tenant: str, sig: str) -> Path:
        """Make the SIG's directory (no link followed on the way); returns its path."""
        with safefs.directory(self.root, self._rel(tenant, sig), create=True):
            pass
        return self.sig_dir(tenant, sig)

    def save_file(self, tenant: str, sig: str, filename: str, data: bytes) -> str:
        """Store an upload; returns its SIG-relative path (`files/<name>`)."""
        name = filename or ""
        if not SAFE_NAME.match(name) or ".." in name or os.path.basename(name) != name:
            raise Invalid(
                "file name must be 1-128 characters of letters, digits, '.', '_' or '-', not starting with a dot",
                field="file",
            )
        try:
            safefs.write_atomic(self.root, self._rel(tenant, sig, "files", name), data)
        except UnsafeFile as exc:
            log.warning("sig %s/%s: upload of %s refused: %s", tenant, sig, name, exc.message)
            raise UnsafeFile(f"cannot store files/{name}: {exc.message}", field="file") from None
        return f"files/{name}"

    def list_files(self, tenant: str, sig: str) -> list[dict[str, object]]:
        """The regular files in `files/` (`path`, `size`, `modified_at`), by name; anything else there
        (links, directories tenant code made) is not listed."""
        out: list[dict[str, object]] = []
        try:
            with safefs.directory(self.root, self._rel(tenant, sig, "files")) as fd:
                for entry in os.scandir(fd):
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode) and SAFE_NAME.match(entry.name):
                        out.append({"path": f"files/{entry.name}", "size": st.st_size, "modified_at": st.st_mtime})
        except FileNotFoundError:
            return []
        except UnsafeFile as exc:
            raise UnsafeFile(f"the files of SIG {tenant}/{sig} are not listed: {exc.message}", field="sig") from None
        return sorted(out, key=lambda f: str(f["path"]))

    def delete_file(self, tenant: str, sig: str, name: str) -> bool:
        """Remove `files/<name>` (a link is removed, never followed); False if it was not there."""
        if not SAFE_NAME.match(name) or ".." in name:
            raise Invalid("file name must be 1-128 characters of letters, digits, '.', '_' or '-', not starting "
                          "with a dot", field="name")
        try:
            return safefs.remove(self.root, self._rel(tenant, sig, "files", name))
        except UnsafeFile as exc:
            raise UnsafeFile(f"cannot delete files/{name}: {exc.message}", field="name") from None

    def resolve(self, tenant: str, sig: str, rel: str, *, field: str) -> Path:
        """The path of a SIG-relative file; `Invalid` if it escapes the SIG, passes through a
        link, is not a regular file or is missing."""
        try:
            parts = safefs.parts_of(rel)
            safefs.check_regular(self.root, self._rel(tenant, sig, *parts))
        except (UnsafeFile, OSError):
            raise Invalid(f"{rel!r} is not a file in this SIG's storage (upload it with POST .../files)",
                          field=field) from None
        return self.sig_dir(tenant, sig).joinpath(*parts)

    def read_driver_log(self, tenant: str, sig: str, app_id: str, *, max_bytes: int) -> tuple[bytes, bool]:
        """(up to `max_bytes` of the driver log, truncated); empty if there is none yet;
        `UnsafeFile` if tenant code replaced it with a link, a hard link or a special file."""
        try:
            return safefs.read_bytes(self.root, self._rel(tenant, sig, "apps", app_id, DRIVER_LOG),
                                     max_bytes=max_bytes, single_link=True)
        except FileNotFoundError:
            return b"", False
        except UnsafeFile as exc:
            log.warning("app %s/%s/%s: driver log not served: %s", tenant, sig, app_id, exc.message)
            raise UnsafeFile(f"the driver log of application {app_id!r} was replaced by something that is not a "
                             f"regular file of its own (a link or a special file); it is not served",
                             field="id") from None

    def open_driver_log(self, tenant: str, sig: str, app_id: str) -> int:
        """A read/write append fd of the driver log, made if missing (for the master's agent)."""
        return safefs.open_append(self.root, self._rel(tenant, sig, "apps", app_id, DRIVER_LOG))

    def delete_sig(self, tenant: str, sig: str) -> None:
        """Remove the SIG's whole tree without following any link in it."""
        try:
            safefs.remove(self.root, self._rel(tenant, sig))
        except UnsafeFile as exc:
            log.warning("sig %s/%s: storage not removed: %s", tenant, sig, exc.message)
        except OSError as exc:
            log.warning("sig %s/%s: storage not fully removed: %s", tenant, sig, exc)
