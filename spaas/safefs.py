"""Files under a tree that tenant code can write, handled without trusting anything planted there.

Every path is resolved one component at a time beneath a trusted root directory with
`os.open(name, O_NOFOLLOW | O_DIRECTORY, dir_fd=parent)` (openat-style), so a symbolic link
anywhere below the root is refused, never followed, and `..` cannot appear. Files are opened
with `O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`, and `fstat` must then say "regular file" (and, for
files the platform serves, "one link", so a hard link to a platform file is refused): a FIFO,
socket or device is refused without blocking. Reads are bounded. Writes go to an `O_EXCL`
temporary file in the same directory and are renamed into place within that directory's fd
(a link planted at the destination is replaced, not followed). Directories are made with
`mkdir(dir_fd=...)`, which never follows links either, and trees are removed with
`shutil.rmtree(dir_fd=...)`, which does not follow links inside the tree.

The root itself (e.g. `STATE/storage`, a container's own directory) is the platform's and is
opened normally. Anything refused raises `UnsafeFile` (a `Conflict`: HTTP 409), with the
SIG-relative path in its message; a missing file raises `FileNotFoundError`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from spaas.errors import Conflict

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# Errors that mean "something other than a plain directory or file is there".
REFUSED = {errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.ENXIO, errno.EMLINK}


class UnsafeFile(Conflict):
    """A path below a tenant-writable root is a link, a special file or otherwise not what the
    platform wrote there; it is neither followed nor read."""

    code = "UnsafeFile"


def parts_of(rel: str | Sequence[str]) -> list[str]:
    """The components of a root-relative path; `UnsafeFile` for absolute paths, `.`/`..`,
    empty components or NUL bytes."""
    items = rel.split("/") if isinstance(rel, str) else list(rel)
    if isinstance(rel, str) and rel.startswith("/"):
        raise UnsafeFile(f"{rel!r} is an absolute path")
    for item in items:
        if item in ("", ".", "..") or "/" in item or "\0" in item:
            raise UnsafeFile(f"{'/'.join(items)!r} is not a plain relative path")
    if not items:
        raise UnsafeFile("empty path")
    return items


def _refuse(what: str, exc: OSError) -> UnsafeFile:
    return UnsafeFile(f"{what} is a link or not a regular file/directory; refused ({errno.errorcode.get(exc.errno or 0, exc.errno)})")


def open_root(root: Path, *, create: bool = False) -> int:
    """An fd of the trusted root directory (made if `create`)."""
    if create:
        os.makedirs(root, exist_ok=True)
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def open_dir(root: Path, rel: str | Sequence[str], *, create: bool = False, mode: int = 0o755) -> int:
    """An fd of the directory `rel` beneath `root`, every component checked (made if `create`).
    The caller closes it."""
    names = parts_of(rel)
    fd = open_root(root, create=create)
    shown: list[str] = []
    try:
        for name in names:
            shown.append(name)
            try:
                nxt = os.open(name, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(name, mode, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile, or a dangling link: the open below decides
                try:
                    nxt = os.open(name, DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in REFUSED:
                        raise _refuse("/".join(shown), exc) from None
                    raise
            except OSError as exc:
                if exc.errno in REFUSED:
                    raise _refuse("/".join(shown), exc) from None
                raise
            os.close(fd)
            fd = nxt
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def directory(root: Path, rel: str | Sequence[str], *, create: bool = False, mode: int = 0o755) -> Iterator[int]:
    fd = open_dir(root, rel, create=create, mode=mode)
    try:
        yield fd
    finally:
        os.close(fd)


def _split(rel: str | Sequence[str]) -> tuple[list[str], str]:
    names = parts_of(rel)
    return names[:-1], names[-1]


def _check_regular(fd: int, what: str, *, single_link: bool) -> os.stat_result:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(f"{what} is not a regular file; refused")
    if single_link and st.st_nlink != 1:
        raise UnsafeFile(f"{what} has {st.st_nlink} hard links; refused")
    return st


def open_regular(dir_fd: int, name: str, flags: int, *, what: str, single_link: bool, mode: int = 0o644) -> int:
    """Open `name` in `dir_fd` with `flags` (plus the safe ones); it must be a regular file.
    A special file is refused before it is opened (opening a device can have effects)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        if not flags & os.O_CREAT:
            raise
    else:
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{what} is a link or not a regular file; refused")
    try:
        fd = os.open(name, flags | FILE_FLAGS, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in REFUSED:
            raise _refuse(what, exc) from None
        raise
    try:
        _check_regular(fd, what, single_link=single_link)
        if flags & (os.O_WRONLY | os.O_RDWR) == 0:
            os.set_blocking(fd, True)  # a regular file: reads never block anyway
        return fd
    except BaseException:
        os.close(fd)
        raise


def _dir_of(root: Path, dirs: list[str], *, create: bool) -> int:
    return open_dir(root, dirs, create=create) if dirs else open_root(root, create=create)


def read_bytes(root: Path, rel: str | Sequence[str], *, max_bytes: int, single_link: bool = True) -> tuple[bytes, bool]:
    """At most `max_bytes` of the regular file `rel` beneath `root`; (data, truncated)."""
    dirs, name = _split(rel)
    what = "/".join([*dirs, name])
    dfd = _dir_of(root, dirs, create=False)
    try:
        fd = open_regular(dfd, name, os.O_RDONLY, what=what, single_link=single_link)
    finally:
        os.close(dfd)
    try:
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        return data[:max_bytes], len(data) > max_bytes
    finally:
        os.close(fd)


def check_regular(root: Path, rel: str | Sequence[str], *, single_link: bool = False) -> None:
    """`rel` is a regular file beneath `root` reached through real directories only."""
    dirs, name = _split(rel)
    dfd = _dir_of(root, dirs, create=False)
    try:
        os.close(open_regular(dfd, name, os.O_RDONLY, what="/".join([*dirs, name]), single_link=single_link))
    finally:
        os.close(dfd)


def write_atomic(root: Path, rel: str | Sequence[str], data: bytes, *, mode: int = 0o644) -> None:
    """Write `rel` beneath `root` (directories made as needed) through an `O_EXCL` temporary file
    renamed into place within the directory's fd."""
    dirs, name = _split(rel)
    dfd = _dir_of(root, dirs, create=True)
    try:
        tmp = f".{name}.{secrets.token_hex(6)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | FILE_FLAGS, mode, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb", closefd=False) as fh:
                fh.write(data)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        try:
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            if exc.errno in REFUSED or exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                raise _refuse("/".join([*dirs, name]), exc) from None
            raise
    finally:
        os.close(dfd)


def open_append(root: Path, rel: str | Sequence[str], *, mode: int = 0o644) -> int:
    """An fd (read/write, append) of the log file `rel` beneath `root`, made if missing; refused
    if it is a link, has other hard links or is not a regular file. The caller closes it."""
    dirs, name = _split(rel)
    dfd = _dir_of(root, dirs, create=True)
    try:
        return open_regular(dfd, name, os.O_RDWR | os.O_APPEND | os.O_CREAT, what="/".join([*dirs, name]),
                            single_link=True, mode=mode)
    finally:
        os.close(dfd)


def remove(root: Path, rel: str | Sequence[str]) -> bool:
    """Remove `rel` beneath `root`, a file, link or whole tree, without following any link
    (a link is removed, never what it points to). False if it was not there."""
    dirs, name = _split(rel)
    try:
        dfd = _dir_of(root, dirs, create=False)
    except FileNotFoundError:
        return False
    try:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=dfd)
        else:
            os.unlink(name, dir_fd=dfd)
        return True
    finally:
        os.close(dfd)
