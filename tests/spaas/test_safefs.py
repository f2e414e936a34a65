"""`spaas.safefs` and `spaas.storage` against planted links and special files: nothing is
followed, nothing blocks, nothing outside the root is read, written or removed."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from spaas import safefs
from spaas.errors import Invalid
from spaas.safefs import UnsafeFile
from spaas.storage import SigStorage

SECRET = b"the-admin-token\n"


@pytest.fixture
def world(tmp_path: Path) -> tuple[SigStorage, Path]:
    """A storage root with acme/etl and a platform secret beside it (like STATE/admin-token)."""
    secret = tmp_path / "admin-token"
    secret.write_bytes(SECRET)
    storage = SigStorage(tmp_path / "storage")
    storage.ensure_sig_dir("acme", "etl")
    storage.ensure_sig_dir("other", "sig")
    return storage, secret


def within(seconds: float, fn, *args, **kw):  # type: ignore[no-untyped-def]
    """Run fn in a thread; fail (rather than hang the suite) if it blocks."""
    out: dict[str, object] = {}

    def run() -> None:
        try:
            out["value"] = fn(*args, **kw)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn.__name__} blocked"
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out.get("value")


def test_driver_log_symlink_to_a_platform_secret_is_not_read(world: tuple[SigStorage, Path]) -> None:
    storage, secret = world
    log = storage.driver_log("acme", "etl", "a1")
    log.parent.mkdir(parents=True)
    log.symlink_to(secret)
    with pytest.raises(UnsafeFile):
        storage.read_driver_log("acme", "etl", "a1", max_bytes=1000)


def test_driver_log_hard_link_to_a_platform_secret_is_not_read(world: tuple[SigStorage, Path]) -> None:
    storage, secret = world
    log = storage.driver_log("acme", "etl", "a1")
    log.parent.mkdir(parents=True)
    os.link(secret, log)
    with pytest.raises(UnsafeFile, match="not a regular file of its own"):
        storage.read_driver_log("acme", "etl", "a1", max_bytes=1000)


@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_special_files_are_refused_without_blocking(world: tuple[SigStorage, Path], kind: str) -> None:
    storage, _ = world
    log = storage.driver_log("acme", "etl", "a1")
    log.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(log)
    else:
        sock = socket.socket(socket.AF_UNIX)
        # Bound by a relative name: a socket path may be 107 bytes at most, and tmp_path under
        # pytest-xdist (.../popen-gw0/...) can be longer.
        cwd = os.getcwd()
        os.chdir(log.parent)
        try:
            sock.bind(log.name)
        finally:
            os.chdir(cwd)
    with pytest.raises(UnsafeFile):
        within(5, storage.read_driver_log, "acme", "etl", "a1", max_bytes=1000)
    with pytest.raises(UnsafeFile):
        within(5, storage.open_driver_log, "acme", "etl", "a1")
    with pytest.raises(Invalid):
        within(5, storage.resolve, "acme", "etl", "apps/a1/driver.log", field="file")


def test_a_symlinked_app_dir_or_sig_dir_is_not_followed(world: tuple[SigStorage, Path], tmp_path: Path) -> None:
    storage, secret = world
    (storage.sig_dir("acme", "etl") / "apps").mkdir()
    (storage.sig_dir("acme", "etl") / "apps" / "a1").symlink_to(tmp_path)  # apps/a1/driver.log -> ?/driver.log
    (tmp_path / "driver.log").write_bytes(SECRET)
    with pytest.raises(UnsafeFile):
        storage.read_driver_log("acme", "etl", "a1", max_bytes=1000)
    with pytest.raises(UnsafeFile):
        storage.open_driver_log("acme", "etl", "a1")
    # The SIG directory itself replaced by a link to another tenant's SIG.
    os.rename(storage.sig_dir("acme", "etl"), tmp_path / "moved")
    storage.sig_dir("acme", "etl").symlink_to(storage.sig_dir("other", "sig"))
    with pytest.raises(UnsafeFile):
        storage.save_file("acme", "etl", "job.py", b"print(1)")
    assert not (storage.sig_dir("other", "sig") / "files").exists()


def test_upload_through_a_symlinked_files_dir_lands_nowhere(world: tuple[SigStorage, Path]) -> None:
    storage, _ = world
    victim = storage.sig_dir("other", "sig")
    storage.files_dir("acme", "etl").symlink_to(victim)
    with pytest.raises(UnsafeFile) as info:
        storage.save_file("acme", "etl", "job.py", b"print('pwned')")
    assert info.value.field == "file"
    assert not (victim / "job.py").exists()


def test_upload_replaces_a_planted_link_instead_of_writing_through_it(world: tuple[SigStorage, Path]) -> None:
    storage, secret = world
    files = storage.files_dir("acme", "etl")
    files.mkdir()
    (files / "job.py").symlink_to(secret)
    os.mkfifo(files / "pipe.py")
    assert storage.save_file("acme", "etl", "job.py", b"print(1)") == "files/job.py"
    assert within(5, storage.save_file, "acme", "etl", "pipe.py", b"print(2)") == "files/pipe.py"
    assert secret.read_bytes() == SECRET
    assert not (files / "job.py").is_symlink() and (files / "job.py").read_bytes() == b"print(1)"
    assert (files / "pipe.py").read_bytes() == b"print(2)"
    assert sorted(p.name for p in files.iterdir()) == ["job.py", "pipe.py"]  # no temporary left


def test_resolve_refuses_links_out_of_the_sig(world: tuple[SigStorage, Path], tmp_path: Path) -> None:
    storage, secret = world
    files = storage.files_dir("acme", "etl")
    files.mkdir()
    (files / "job.py").write_text("print(1)")
    (files / "token.py").symlink_to(secret)
    (files / "lib").symlink_to(tmp_path)
    assert storage.resolve("acme", "etl", "files/job.py", field="file") == files / "job.py"
    for rel in ("files/token.py", "files/lib/admin-token", "../other/sig/files/x", "/etc/passwd", "files",
                "files//job.py", "files/./job.py"):
        with pytest.raises(Invalid) as info:
            storage.resolve("acme", "etl", rel, field="pyFiles.0")
        assert info.value.field == "pyFiles.0"


def test_reads_are_bounded(world: tuple[SigStorage, Path]) -> None:
    storage, _ = world
    log = storage.driver_log("acme", "etl", "a1")
    log.parent.mkdir(parents=True)
    log.write_bytes(b"x" * 5000)
    assert storage.read_driver_log("acme", "etl", "a1", max_bytes=100) == (b"x" * 100, True)
    assert storage.read_driver_log("acme", "etl", "a1", max_bytes=5000) == (b"x" * 5000, False)
    assert storage.read_driver_log("acme", "etl", "missing", max_bytes=10) == (b"", False)


def test_delete_sig_removes_links_not_their_targets(world: tuple[SigStorage, Path], tmp_path: Path) -> None:
    storage, secret = world
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    sig_dir = storage.sig_dir("acme", "etl")
    (sig_dir / "files").mkdir()
    (sig_dir / "files" / "out").symlink_to(outside)
    (sig_dir / "token").symlink_to(secret)
    os.link(secret, sig_dir / "hard")
    os.mkfifo(sig_dir / "fifo")
    within(10, storage.delete_sig, "acme", "etl")
    assert not sig_dir.exists()
    assert (outside / "keep.txt").read_text() == "keep" and secret.read_bytes() == SECRET
    # A SIG directory that is itself a link: the link goes, the other SIG stays.
    (storage.root / "acme" / "etl").symlink_to(storage.sig_dir("other", "sig"))
    (storage.sig_dir("other", "sig") / "data").write_text("theirs")
    storage.delete_sig("acme", "etl")
    assert not os.path.lexists(storage.root / "acme" / "etl")
    assert (storage.sig_dir("other", "sig") / "data").read_text() == "theirs"


def test_write_atomic_is_private_and_replaces_links(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere"
    secret.write_text("precious")
    root = tmp_path / "container"
    (root / "conf").mkdir(parents=True)
    (root / "conf" / "daemon.properties").symlink_to(secret)
    safefs.write_atomic(root, "conf/daemon.properties", b"spark.authenticate.secret=s\n", mode=0o600)
    target = root / "conf" / "daemon.properties"
    assert not target.is_symlink() and secret.read_text() == "precious"
    assert target.stat().st_mode & 0o777 == 0o600
    with pytest.raises(UnsafeFile):
        safefs.write_atomic(root, "../escape", b"x")


def test_process_runtime_cleanup_does_not_follow_links(tmp_path: Path) -> None:
    from spaas.runtimes.process import ProcessRuntime

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    runtime = ProcessRuntime(tmp_path / "state")
    cdir = runtime.container_dir("acme", "etl", "acme-etl-master-0")
    (cdir / "drivers").mkdir(parents=True)
    (cdir / "drivers" / "out").symlink_to(outside)
    (cdir / "work").symlink_to(outside)
    runtime.cleanup_sig("acme", "etl")
    assert not (tmp_path / "state" / "runtime" / "acme" / "etl").exists()
    assert (outside / "keep").read_text() == "keep"
