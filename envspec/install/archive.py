"""Is a package archive safe to unpack? Checked before py-rattler extracts it.

A hash says an archive is the one the lockfile names; it does not say the archive is well-formed.
py-rattler panics on a member with an absolute path (taking the process down with a Rust
backtrace) and fails half-way through a truncated one. So every freshly downloaded archive is read
once here, completely, before linking:

* ``.tar.bz2``: the tar stream; ``.conda``: the zip (``info-*.tar.zst`` and ``pkg-*.tar.zst``, CRCs
  checked) and each inner tar (zstandard when importable, else py-rattler's own streaming reader);
* every member's path must be relative and stay inside the prefix (no ``/x``, ``C:``, ``..``, NUL);
  a link must point inside it too; device files and FIFOs are refused;
* every member's data is read to the end, so a truncated or corrupt archive fails here.

Anything wrong raises :class:`ArchiveInvalid` with one line saying what.
"""

from __future__ import annotations

import asyncio
import posixpath
import tarfile
import zipfile
from pathlib import Path
from typing import IO, Any, Final

_READ: Final = 1 << 20


class ArchiveInvalid(Exception):
    """The archive cannot be unpacked safely; ``str()`` says why, in one line."""


def check_member(name: str, *, link_target: str | None = None, is_hardlink: bool = False) -> None:
    """Refuse a member path (and link target) that is absolute or leaves the package root."""
    for label, value in (("path", name), ("link target", link_target)):
        if value is None:
            continue
        if "\x00" in value:
            raise ArchiveInvalid(f"member {name!r} has a NUL in its {label}")
    clean = name.replace("\\", "/")
    if clean.startswith("/") or (len(clean) > 1 and clean[1] == ":"):
        raise ArchiveInvalid(f"member {name!r} has an absolute path")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveInvalid(f"member {name!r} has a '..' in its path")
    if link_target is None:
        return
    target = link_target.replace("\\", "/")
    if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
        raise ArchiveInvalid(f"link {name!r} points to the absolute path {link_target!r}")
    # a hard link names another member; a symbolic link is relative to its own folder
    base = "" if is_hardlink else posixpath.dirname("/".join(parts))
    resolved = posixpath.normpath(posixpath.join(base, target))
    if resolved == ".." or resolved.startswith("../"):
        raise ArchiveInvalid(f"link {name!r} points outside the package ({link_target!r})")


def _check_tar_stream(fileobj: IO[bytes], label: str) -> int:
    """Walk a tar stream member by member, reading every file to its end; returns the count."""
    count = 0
    with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
        for member in tar:
            count += 1
            if member.isdev() or member.isfifo():
                raise ArchiveInvalid(f"{label}: member {member.name!r} is a device file or FIFO")
            link = member.linkname if (member.issym() or member.islnk()) else None
            check_member(member.name, link_target=link, is_hardlink=member.islnk())
            if member.isfile():
                data = tar.extractfile(member)
                if data is not None:
                    read = 0
                    while chunk := data.read(_READ):
                        read += len(chunk)
                    if read != member.size:
                        raise ArchiveInvalid(f"{label}: member {member.name!r} is truncated")
    return count


def _check_conda_with_rattler(path: Path) -> None:
    """No zstandard: py-rattler's streaming reader lists the inner tars (its errors contained)."""
    from rattler.package_streaming import PackageArchive

    async def walk() -> None:
        archive = await PackageArchive.from_path(path)
        for section in ("info", "pkg"):
            async for entry in archive.stream(section):
                check_member(entry.name, link_target=entry.link_target, is_hardlink=entry.is_hardlink)
                if entry.is_file:
                    await entry.read()

    try:
        asyncio.run(walk())
    except ArchiveInvalid:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # rattler's errors and panics alike
        raise ArchiveInvalid(" ".join(str(exc).split())[:200] or type(exc).__name__) from None


def _check_conda(path: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        for name in names:
            if "/" in name or "\\" in name or name in (".", ".."):
                raise ArchiveInvalid(f"zip member {name!r} is not a plain file name")
        inner = [n for n in names if n.endswith(".tar.zst") and n.startswith(("info-", "pkg-"))]
        if not any(n.startswith("info-") for n in inner) or not any(n.startswith("pkg-") for n in inner):
            raise ArchiveInvalid("not a .conda package (no info-*.tar.zst and pkg-*.tar.zst)")
        bad = zf.testzip()  # every member's CRC: a truncated or altered member fails here
        if bad is not None:
            raise ArchiveInvalid(f"zip member {bad!r} is corrupt")
        try:
            import zstandard
        except ImportError:  # not a dependency of envspec: py-rattler's reader instead
            _check_conda_with_rattler(path)
            return
        for name in inner:
            with zf.open(name) as raw:
                reader: Any = zstandard.ZstdDecompressor().stream_reader(raw)
                with reader:
                    _check_tar_stream(reader, name)


def validate_archive(path: Path, filename: str) -> None:
    """Raise :class:`ArchiveInvalid` unless ``path`` (named ``filename``) unpacks safely."""
    try:
        if filename.endswith(".conda"):
            _check_conda(path)
        elif filename.endswith(".tar.bz2"):
            with path.open("rb") as handle:
                _check_tar_stream(handle, filename)
        else:
            raise ArchiveInvalid(f"{filename} is neither a .conda nor a .tar.bz2 package")
    except ArchiveInvalid:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError) as exc:
        # zstandard.ZstdError derives from Exception; caught below
        raise ArchiveInvalid(f"truncated or corrupt archive ({' '.join(str(exc).split())[:200]})") from None
    except Exception as exc:
        raise ArchiveInvalid(
            f"truncated or corrupt archive ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        ) from None
