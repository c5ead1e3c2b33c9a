"""The real probe reads regular files only, and a bounded amount of each (issue #21, family 7).

A FIFO (a blocking open waits for a writer forever), ``/dev/zero`` behind a symlink (an endless read),
a folder, or a file over the cap where ``/etc/os-release``, ``/proc/driver/nvidia/version`` or the
checkpoint should be: each answers "unknown" (``None``) at once. ``/proc`` files say size 0 whatever
they hold: they are read (to the cap), not taken as empty.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from envspec.doctor.probe import FILE_MAX_BYTES, DistroFacts, SystemProbe

posix_only = pytest.mark.skipif(os.name != "posix", reason="FIFOs and devices are POSIX")
OS_RELEASE = 'NAME="Rocky Linux"\nVERSION_ID="8.10"\nID="rocky"\nPRETTY_NAME="Rocky Linux 8.10 (Green Obsidian)"\n'


@pytest.fixture
def hostile(tmp_path: Path, bounded_memory: None) -> Iterator[Callable[[str], Path]]:
    """Makes a hostile file of a kind. Should the refusal ever break, the test still ends: a late writer
    opens each FIFO every 5 s (a blocking open then returns, and the read sees end of file), and
    ``bounded_memory`` turns an endless read of /dev/zero into MemoryError."""
    fifos: list[Path] = []

    def make(kind: str) -> Path:
        path = tmp_path / f"{kind}-os-release"
        if kind == "fifo":
            os.mkfifo(path)
            fifos.append(path)
        elif kind == "dev-zero":
            path.symlink_to("/dev/zero")
        elif kind == "folder":
            path.mkdir()
        else:  # a regular file a few bytes over the cap
            path.write_text("ID=x\n" + "#" * FILE_MAX_BYTES)
        return path

    done = threading.Event()

    def unblock() -> None:
        while not done.wait(5):
            for fifo in fifos:
                with contextlib.suppress(OSError):  # nobody is blocked reading it: the refusal held
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    writer = threading.Thread(target=unblock, daemon=True)
    writer.start()
    try:
        yield make
    finally:
        done.set()


@posix_only
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder", "over-the-cap"])
def test_a_file_that_is_no_bounded_regular_file_answers_none(hostile: Callable[[str], Path], kind: str) -> None:
    path = hostile(kind)
    probe = SystemProbe()
    assert probe.read_file(str(path)) is None
    if kind != "over-the-cap":
        assert probe.file_size(str(path)) is None  # the checkpoint's question: no regular file, no size


@posix_only
@pytest.mark.skipif(sys.platform != "linux", reason="the distribution is a Linux question")
@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder", "over-the-cap"])
def test_os_release_that_is_no_bounded_regular_file_is_skipped(
    hostile: Callable[[str], Path], tmp_path: Path, kind: str
) -> None:
    bad = hostile(kind)
    assert SystemProbe(os_release=[str(bad)]).distro() is None
    good = tmp_path / "usr-lib-os-release"
    good.write_text(OS_RELEASE)
    assert SystemProbe(os_release=[str(bad), str(good)]).distro() == DistroFacts(
        "rocky", "8.10", "Rocky Linux 8.10 (Green Obsidian)"
    )


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="no /proc")
def test_proc_files_are_read_although_they_say_size_0() -> None:
    assert Path("/proc/self/status").stat().st_size == 0
    text = SystemProbe().read_file("/proc/self/status")
    assert text is not None and text.startswith("Name:") and "VmSize:" in text


def test_a_checkpoint_of_a_size_is_measured_without_reading_it(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.ckpt"
    with checkpoint.open("wb") as handle:
        handle.truncate(5 << 30)  # sparse: 5 GiB, never read
    assert SystemProbe().file_size(str(checkpoint)) == 5 << 30
    assert SystemProbe().file_size(str(tmp_path / "nul\0byte")) is None
