"""What of a SIG's storage each of its containers mounts on a runtime with mounts (Docker):
a user's notebook server its own folder and the uploads read-only, nothing else; every other
container the whole storage with `files/` pinned as a mount point and `notebooks/` hidden."""

from __future__ import annotations

from spaas import notebooks as nb


def test_a_notebook_server_mounts_its_users_folder_and_the_uploads_read_only() -> None:
    binds, tmpfs = nb.container_mounts(nb.ROLE, "Alice")
    assert binds == ((("notebooks", "alice"), "rw"), (("files",), "ro"))
    assert tmpfs == ()
    # Not another user's folder, not the SIG's root, driver logs or event logs.
    assert all(parts[:1] in (("notebooks",), ("files",)) and len(parts) >= 1 for parts, _ in binds)
    weird = nb.container_mounts(nb.ROLE, "../bob")[0]
    assert weird[0][0][0] == "notebooks" and weird[0][0][1].startswith("u-") and weird[1] == (("files",), "ro")


def test_every_other_container_has_files_pinned_and_notebooks_hidden() -> None:
    for role in ("master", "worker", "history"):
        binds, tmpfs = nb.container_mounts(role)
        assert binds == (((), "rw"), (("files",), "rw"))  # the parent first, so the nested bind lands on it
        assert tmpfs == (("notebooks",),)
    # Whatever a notebook server binds read-write or read-only, no SIG code can replace on the host:
    # its user's folder lies under the hidden tmpfs, the uploads are a mount point of their own.
    hidden, pinned = nb.container_mounts("worker")[1], nb.container_mounts("worker")[0][1:]
    for parts, _ in nb.container_mounts(nb.ROLE, "alice")[0]:
        assert any(parts[:len(h)] == h for h in hidden) or any(parts == p for p, _ in pinned)
