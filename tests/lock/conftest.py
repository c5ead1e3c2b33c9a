"""Fixtures of the lock tests: a real local conda channel, built once per session."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

FACTORY = Path(__file__).resolve().parent.parent / "channel_factory.py"


@pytest.fixture(scope="session")
def local_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A conda-forge-shaped channel of real ``.conda`` packages, indexed by py-rattler.

    Built in a child process: py-rattler may crash at interpreter exit, and a child keeps
    that (and its exit code) away from the test process.
    """
    root = tmp_path_factory.mktemp("channel") / "conda-forge-local"
    subprocess.run([sys.executable, str(FACTORY), str(root)], check=True, capture_output=True)
    return root


@dataclass
class SilentChannel:
    """A channel whose server accepts every connection and never answers: its ``url``, and the
    connections it ``held`` (open until the test ends)."""

    url: str
    held: list[socket.socket]


@pytest.fixture
def silent_channel() -> Iterator[SilentChannel]:
    """A :class:`SilentChannel`, for as long as the test runs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield SilentChannel(f"http://127.0.0.1:{server.getsockname()[1]}/cf", held)
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()
