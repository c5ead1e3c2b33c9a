"""Small filesystem effects shared by every step: atomic writes and a run lock."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from envspec.errors import BusyError


def current_umask() -> int:
    """The process's umask (read by setting it and back: Python has no getter)."""
    current = os.umask(0)
    os.umask(current)
    return current


if sys.platform == "win32":

    def _set_mode(fd: int, path: str, mode: int) -> None:
        """Windows has no ``os.fchmod`` before Python 3.13; ``chmod`` by name sets what it keeps (read-only)."""
        Path(path).chmod(mode)

else:

    def _set_mode(fd: int, path: str, mode: int) -> None:
        os.fchmod(fd, mode)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and ``os.replace``.

    A crash or kill at any moment leaves either the old file or the new one, never a mix. The new
    file gets the mode an ordinary ``open(path, "w")`` would give it (0666 less the umask), or the
    mode of the file it replaces, not mkstemp's owner-only 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        _set_mode(fd, tmp, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_create_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file ``path``, never over an existing one: a temp file in the same folder,
    then ``os.link`` (atomic, and ``FileExistsError`` when the name is taken, even by a racing writer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        _set_mode(fd, tmp, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    """Atomic write of UTF-8 text with ``\\n`` line endings on every platform."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def run_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive, non-blocking file lock so two runs never interleave.

    POSIX: ``flock`` on the lock file, as the ``filelock`` package takes it (so they exclude each
    other), without importing it (with asyncio, 25-70 ms of every lock's start-up); elsewhere
    ``filelock`` itself."""
    path.parent.mkdir(parents=True, exist_ok=True)
    busy = BusyError(
        f"another envspec run is already {what} ({path} is held)",
        tip="wait for it to finish, or remove the lock file if no envspec process is running",
    )
    if sys.platform != "win32":  # (a check mypy --platform understands)
        import errno
        import fcntl

        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES}:  # held (EACCES: some file systems)
                raise busy from None
            raise
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
    else:
        from filelock import FileLock, Timeout

        lock = FileLock(str(path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise busy from None
        try:
            yield
        finally:
            lock.release()


class NotRegularFile(OSError):
    """A path that is read as a file is a FIFO, a device, a folder or a socket (reading it could block
    forever or never end: ``kind`` says which, e.g. "a FIFO"), or it is larger than the reader's cap
    (``cap``, the bytes allowed; ``kind`` is then None)."""

    def __init__(self, message: str, *, kind: str | None = None, cap: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.cap = cap


def file_kind(mode: int) -> str:
    """What a file that is not a regular file is, for a message ("a FIFO", "a character device")."""
    import stat

    for test, kind in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return kind
    return "not a plain file"


#: The most bytes envspec reads from a text input it parses (spec, lockfiles, manifests).
TEXT_INPUT_MAX_BYTES = 64 << 20


def read_regular_text(
    path: Path, max_bytes: int = TEXT_INPUT_MAX_BYTES, *, errors: str = "strict", head: bool = False
) -> str:
    """The UTF-8 text of ``path`` if it is a regular file of at most ``max_bytes`` bytes (``head``:
    its first ``max_bytes`` bytes, whatever its size; ``errors`` as for ``bytes.decode``).
    FileNotFoundError, UnicodeDecodeError and :class:`NotRegularFile` (an OSError) are the caller's
    to report; see :func:`read_regular_bytes`."""
    return read_regular_bytes(path, max_bytes, head=head).decode("utf-8", errors)


def read_regular_bytes(path: Path, max_bytes: int = TEXT_INPUT_MAX_BYTES, *, head: bool = False) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes`` bytes (``head``: its
    first ``max_bytes`` bytes, whatever its size).

    Opened without blocking (a FIFO with no writer must not hang the open), checked with ``fstat``
    on the open descriptor (no check-then-open race); raises FileNotFoundError and
    :class:`NotRegularFile` (an OSError).
    """
    import stat

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = file_kind(info.st_mode)
            raise NotRegularFile(f"not a regular file ({kind}): {path}", kind=kind)
        if info.st_size > max_bytes and not head:
            raise NotRegularFile(f"larger than {max_bytes} bytes: {path}", cap=max_bytes)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes and (chunk := os.read(fd, min(1 << 20, max_bytes + 1 - total))):
            total += len(chunk)
            chunks.append(chunk)
        if total > max_bytes and not head:  # /proc and /sys files say size 0: the read is what counts
            raise NotRegularFile(f"larger than {max_bytes} bytes: {path}", cap=max_bytes)
    finally:
        os.close(fd)
    return b"".join(chunks)[:max_bytes]
