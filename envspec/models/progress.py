"""What a pull shows while it runs: per-file lines on stderr, one updating line per file on a terminal."""

from __future__ import annotations

import time
from typing import TextIO

from envspec.models.pull import PullEvent
from envspec.units import human_bytes


class PullProgress:
    """Per-file lines on stderr; on a terminal, one line per file that updates in place."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.last = 0.0

    def __call__(self, event: PullEvent) -> None:
        where = f"  [{event.index}/{event.count}] {event.path}"
        if event.kind == "model":
            self._line(f"{event.model} ({event.index}/{event.count}): {event.path}, {human_bytes(event.total)}")
            self._line(f"  licence: {event.note}")
        elif event.kind == "kept":
            self._line(f"{where}: already in place")
        elif event.kind == "removed":
            self._line(f"  removed {event.path} (left over from an older pull)")
        elif event.kind == "file":
            self.started = self.last = time.monotonic()
            self._line(f"{where} ({human_bytes(event.total)})", final=not self.tty)
        elif event.kind == "bytes":
            now = time.monotonic()
            done = event.done >= event.total
            if now - self.last < (0.2 if self.tty else 10.0) and not done:
                return
            self.last = now
            rate = event.done / max(now - self.started, 1e-6)
            share = 100 * event.done // max(event.total, 1)
            text = f"{where} {share}% of {human_bytes(event.total)}, {human_bytes(int(rate))}/s"
            if self.tty:
                self.stream.write("\r\033[K" + text + ("\n" if done else ""))
                self.stream.flush()
            elif not done:
                self._line(text)

    def _line(self, text: str, final: bool = True) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
            self.stream.flush()
        else:
            print(text, file=self.stream, flush=True)
