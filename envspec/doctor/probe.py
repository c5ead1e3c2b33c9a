"""Every question ``envspec doctor`` asks the machine goes through one small interface.

``SystemProbe`` asks the real machine (commands with a short timeout, files, the C library,
disk and memory); it is the only code in the doctor that touches the machine. ``RecordedProbe``
answers from recorded outputs (a dict or a JSON file), so tests run the situations of all four
platforms — an M1 under Rosetta, a Windows box with an NVIDIA driver — on one Linux machine.

A probe never raises for a missing tool or file and never hangs: a command that is not installed
answers ``None``, one that runs too long answers a ``ProbeResult`` with ``returncode`` 124. It reads
regular files only, and at most ``FILE_MAX_BYTES`` of one (``/proc`` and ``/sys`` files say size 0
whatever they hold, so the read is capped, not their size trusted): a FIFO, a device such as
``/dev/zero`` or a folder where a file is expected answers ``None``, as a missing file does.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform as _platform
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Protocol

#: Seconds a probe command may run. nvidia-smi on a wedged driver or a cold `conda info` can take
#: a few seconds; nothing the doctor runs should take longer.
COMMAND_TIMEOUT_S: Final = 15.0
TIMEOUT_RETURNCODE: Final = 124
#: A command's stdout and stderr are read up to this many bytes each; past it, it is ended (an
#: ``nvidia-smi`` or ``conda`` that prints without end must not fill memory for 15 s).
OUTPUT_MAX_BYTES: Final = 1 << 20
OVERFLOW_RETURNCODE: Final = 125
#: The most bytes the probe reads from one file (``/etc/os-release`` and ``/proc/driver/nvidia/version``
#: hold a few hundred); a longer one answers ``None``.
FILE_MAX_BYTES: Final = 64 * 1024
#: Where os-release(5) says the operating system describes itself, in the order it says to look.
OS_RELEASE_FILES: Final = ("/etc/os-release", "/usr/lib/os-release")


@dataclass(frozen=True)
class ProbeResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True)
class PlatformFacts:
    """What the running Python says about the machine (``platform`` / ``sys``)."""

    system: str  # platform.system(): "Linux", "Darwin", "Windows"
    machine: str  # platform.machine(): "x86_64", "arm64", "AMD64", "aarch64"
    release: str  # platform.release()
    python_version: str  # "3.11.7"
    python_bits: int  # 64 or 32


@dataclass(frozen=True)
class DistroFacts:
    id: str  # "ubuntu"
    version: str  # "24.04"
    name: str  # "Ubuntu 24.04.1 LTS"


class Probe(Protocol):
    """Questions about the machine. Each answers ``None`` when it cannot tell."""

    def run(self, cmd: Sequence[str]) -> ProbeResult | None:
        """Run a command; ``None`` when the executable does not exist."""
        ...

    def which(self, name: str) -> str | None: ...

    def read_file(self, path: str) -> str | None: ...

    def file_size(self, path: str) -> int | None:
        """Size of a regular file in bytes, ``None`` when there is none."""
        ...

    def platform(self) -> PlatformFacts: ...

    def distro(self) -> DistroFacts | None: ...

    def glibc(self) -> str | None:
        """Version of the GNU C library this Python runs on ("2.39"); ``None`` for musl/macOS/Windows."""
        ...

    def disk_free(self, path: str) -> int | None: ...

    def memory_total(self) -> int | None: ...

    def env(self, name: str) -> str | None: ...

    def registry_dword(self, key: str, name: str) -> int | None:
        """A DWORD value under ``HKEY_LOCAL_MACHINE\\key`` (Windows); ``None`` when absent or not Windows."""
        ...


class SystemProbe:
    """The real machine. Never raises, never waits longer than ``timeout`` per command, never reads
    anything but a regular file (``os_release``: where the distribution is described)."""

    def __init__(
        self,
        timeout: float = COMMAND_TIMEOUT_S,
        environ: Mapping[str, str] | None = None,
        os_release: Sequence[str] = OS_RELEASE_FILES,
    ) -> None:
        self.timeout = timeout
        self.environ = os.environ if environ is None else environ
        self.os_release = tuple(os_release)

    def run(self, cmd: Sequence[str]) -> ProbeResult | None:
        exe = cmd[0] if Path(cmd[0]).is_absolute() else shutil.which(cmd[0])
        if exe is None or not Path(exe).exists():
            return None
        posix = os.name == "posix"
        try:
            proc = subprocess.Popen(
                [exe, *cmd[1:]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=posix,  # so a timeout can end the command and anything it started
            )
        except OSError as exc:  # not executable, wrong architecture...
            return ProbeResult(126, "", str(exc))
        return _collect(proc, self.timeout, posix)

    def which(self, name: str) -> str | None:
        return shutil.which(name)

    def read_file(self, path: str) -> str | None:
        from envspec.fsutil import read_regular_text

        try:
            return read_regular_text(Path(path), FILE_MAX_BYTES, errors="replace")
        except OSError:  # missing, unreadable, no regular file (NotRegularFile), or over the cap
            return None

    def file_size(self, path: str) -> int | None:
        import stat

        try:
            st = Path(path).stat()
        except (OSError, ValueError):
            return None
        return st.st_size if stat.S_ISREG(st.st_mode) else None

    def platform(self) -> PlatformFacts:
        return PlatformFacts(
            system=_platform.system(),
            machine=_platform.machine(),
            release=_platform.release(),
            python_version=_platform.python_version(),
            python_bits=64 if sys.maxsize > 2**32 else 32,
        )

    def distro(self) -> DistroFacts | None:
        """The first os-release file there is, read as any probe file (regular, capped) and parsed by
        :func:`parse_os_release` (the ``distro`` package would open ``/etc/*-release`` files as they come)."""
        if _platform.system() != "Linux":
            return None
        for path in self.os_release:
            text = self.read_file(path)
            if text is not None:
                return parse_os_release(text)
        return None

    def glibc(self) -> str | None:
        text: str | None = None
        if sys.platform != "win32":  # confstr is POSIX only; the name is glibc's own
            with contextlib.suppress(ValueError, OSError):
                text = os.confstr("CS_GNU_LIBC_VERSION")  # "glibc 2.39"
        if text and text.startswith("glibc "):
            return text.split()[1]
        lib, version = _platform.libc_ver()
        return version if lib == "glibc" and version else None

    def disk_free(self, path: str) -> int | None:
        probe_path = Path(path)
        while not probe_path.exists() and probe_path != probe_path.parent:
            probe_path = probe_path.parent
        try:
            return shutil.disk_usage(probe_path).free
        except OSError:
            return None

    def memory_total(self) -> int | None:
        return _memory_total()

    def env(self, name: str) -> str | None:
        return self.environ.get(name)

    def registry_dword(self, key: str, name: str) -> int | None:
        return _registry_dword(key, name)


def parse_os_release(text: str) -> DistroFacts | None:
    """``/etc/os-release`` (KEY=value lines, values optionally quoted) -> id, version, pretty name."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or not key or key.startswith("#"):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    if "ID" not in values and "NAME" not in values:
        return None
    return DistroFacts(
        id=values.get("ID", "").lower(),
        version=values.get("VERSION_ID", ""),
        name=values.get("PRETTY_NAME") or values.get("NAME", ""),
    )


# Platform-only calls sit behind ``sys.platform`` checks, which ``mypy --platform win32|darwin|linux``
# understands (nox -s lint runs all three): each definition below is checked where it runs.
if sys.platform == "win32":

    def _memory_total() -> int | None:
        return _windows_memory()

    def _registry_dword(key: str, name: str) -> int | None:
        import winreg

        try:
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key) as handle:
                value, kind = winreg.QueryValueEx(handle, name)
        except OSError:
            return None
        return int(value) if kind == winreg.REG_DWORD else None

    def _kill_tree(proc: subprocess.Popen[bytes], posix: bool) -> None:
        """End a timed-out command, then reap it."""
        with contextlib.suppress(OSError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            proc.wait(timeout=5)  # its pipes are drained by _collect's readers

else:

    def _memory_total() -> int | None:
        try:
            pages = os.sysconf("SC_PHYS_PAGES")
            size = os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            return None
        return pages * size if pages > 0 and size > 0 else None

    def _registry_dword(key: str, name: str) -> int | None:
        return None  # no registry off Windows

    def _kill_tree(proc: subprocess.Popen[bytes], posix: bool) -> None:
        """End a timed-out command and its children (its own session), then reap it."""
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            proc.wait(timeout=5)  # its pipes are drained by _collect's readers


def _pump(stream: IO[bytes], buf: bytearray, over: threading.Event) -> None:
    """Read ``stream`` into ``buf`` until its end or ``OUTPUT_MAX_BYTES``."""
    with contextlib.suppress(OSError, ValueError):
        while chunk := stream.read1(1 << 16):  # type: ignore[attr-defined]
            room = OUTPUT_MAX_BYTES - len(buf)
            buf += chunk[:room]
            if len(chunk) > room:
                over.set()
                return


def _collect(proc: subprocess.Popen[bytes], timeout: float, posix: bool) -> ProbeResult:
    """What ``proc`` printed (each stream capped) and its status, within ``timeout`` seconds."""
    out, err, over = bytearray(), bytearray(), threading.Event()
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        threading.Thread(target=_pump, args=(s, b, over), daemon=True)
        for s, b in ((proc.stdout, out), (proc.stderr, err))
    ]
    for pump in pumps:
        pump.start()
    deadline = time.monotonic() + timeout
    result: ProbeResult | None = None
    while result is None:
        if over.is_set():
            result = ProbeResult(OVERFLOW_RETURNCODE, "", f"printed more than {OUTPUT_MAX_BYTES} bytes; ended")
        elif time.monotonic() > deadline:
            result = ProbeResult(TIMEOUT_RETURNCODE, "", f"timed out after {timeout:g} s")
        elif proc.poll() is not None and not any(p.is_alive() for p in pumps):
            text = {k: bytes(v).decode("utf-8", errors="replace") for k, v in (("out", out), ("err", err))}
            return ProbeResult(proc.returncode, text["out"], text["err"])
        else:
            over.wait(0.02)
    _kill_tree(proc, posix)
    for pump in pumps:
        pump.join(timeout=1)
    return result


def _windows_memory() -> int | None:
    if sys.platform == "win32":  # GlobalMemoryStatusEx: the standard-library way to read RAM on Windows
        import ctypes

        class MemoryStatus(ctypes.Structure):
            _fields_ = [(n, ctypes.c_ulong) for n in ("dwLength", "dwMemoryLoad")] + [
                (n, ctypes.c_ulonglong)
                for n in ("total", "avail", "page_total", "page_avail", "virt_total", "virt_avail", "ext_avail")
            ]

        try:
            status = MemoryStatus()
            status.dwLength = ctypes.sizeof(MemoryStatus)
            if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
                return int(status.total)
        except Exception:
            return None
    return None


class RecordedProbe:
    """Answers from a recording: what each command printed, which files existed, the platform.

    Recording format (JSON), every key optional except ``platform``::

        {
          "platform": {"system": "Darwin", "machine": "arm64", "release": "24.1.0",
                       "python_version": "3.12.7", "python_bits": 64},
          "commands": {"sw_vers -productVersion": {"returncode": 0, "stdout": "15.1\\n", "stderr": ""},
                       "nvidia-smi": null},            # null: the command does not exist
          "files": {"/etc/os-release": "NAME=...", "models/ldm/stable-diffusion-v1/model.ckpt": 4265380512},
          "glibc": "2.39", "disk_free": 123456789, "memory_total": 17179869184,
          "env": {"CONDA_SUBDIR": "osx-arm64"},
          "registry": {"SYSTEM\\CurrentControlSet\\Control\\FileSystem\\LongPathsEnabled": 1}
        }

    Commands are keyed by their words joined with one space; a command not in the recording does
    not exist. A file value that is a string is its text, an integer is a file of that size (too big
    to record). A file key may be relative: it matches any path ending in ``/<key>``.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = dict(data)
        self.calls: list[str] = []

    @classmethod
    def from_json(cls, path: Path) -> RecordedProbe:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def run(self, cmd: Sequence[str]) -> ProbeResult | None:
        key = " ".join(cmd)
        self.calls.append(key)
        entry = self.data.get("commands", {}).get(key)
        if entry is None:
            return None
        return ProbeResult(int(entry.get("returncode", 0)), str(entry.get("stdout", "")), str(entry.get("stderr", "")))

    def which(self, name: str) -> str | None:
        commands: dict[str, Any] = self.data.get("commands", {})
        found = any(k.split(" ")[0] == name and v is not None for k, v in commands.items())
        return self.data.get("which", {}).get(name, f"/recorded/bin/{name}") if found else None

    def _file(self, path: str) -> str | int | None:
        files: dict[str, str | int] = self.data.get("files", {})
        posix = path.replace("\\", "/")
        if posix in files:
            return files[posix]
        for key, value in files.items():
            if not key.startswith("/") and posix.endswith("/" + key):
                return value
        return None

    def read_file(self, path: str) -> str | None:
        value = self._file(path)
        return value if isinstance(value, str) else None

    def file_size(self, path: str) -> int | None:
        value = self._file(path)
        if value is None:
            return None
        return value if isinstance(value, int) else len(value.encode())

    def platform(self) -> PlatformFacts:
        p = self.data["platform"]
        return PlatformFacts(
            system=str(p["system"]),
            machine=str(p["machine"]),
            release=str(p.get("release", "")),
            python_version=str(p.get("python_version", "3.12.0")),
            python_bits=int(p.get("python_bits", 64)),
        )

    def distro(self) -> DistroFacts | None:
        if self.platform().system != "Linux":
            return None
        text = self.read_file("/etc/os-release")
        return None if text is None else parse_os_release(text)

    def glibc(self) -> str | None:
        value = self.data.get("glibc")
        return None if value is None else str(value)

    def disk_free(self, path: str) -> int | None:
        value = self.data.get("disk_free")
        return None if value is None else int(value)

    def memory_total(self) -> int | None:
        value = self.data.get("memory_total")
        return None if value is None else int(value)

    def env(self, name: str) -> str | None:
        value = self.data.get("env", {}).get(name)
        return None if value is None else str(value)

    def registry_dword(self, key: str, name: str) -> int | None:
        value = self.data.get("registry", {}).get(f"{key}\\{name}")
        return None if value is None else int(value)
