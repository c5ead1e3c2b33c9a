"""The one downloader: keep-alive pool vs. a new connection per file, on a local HTTP/1.1 server.

    python benchmarks/bench_download.py [--files 300] [--size 65536] [--repeat 3]

Serves ``--files`` files of ``--size`` bytes from 127.0.0.1 (keep-alive, Content-Length) and times
fetching all of them, sequentially, three ways in the same run:

* ``envspec.download.Downloader`` (one pooled connection, hashing and bounds included);
* the floor it replaces: ``urllib.request.urlopen`` per file (a new TCP connection each, as
  install/execute.py and install/pip.py did), writing to a file;
* ``http.client`` on one reused connection with no hashing or checks (the ceiling).

Prints the medians and ratios; the goal is the pooled downloader <= 1.0x the per-file-connection
floor (it must never be slower than what it replaced). A ratio, not an absolute time: the numbers
move with the machine, the ratio much less.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from envspec.download import Downloader, Limits  # noqa: E402

GOAL = 1.0


def serve(size: int) -> tuple[http.server.ThreadingHTTPServer, str]:
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def pooled(base: str, n: int, dest: Path) -> None:
    with Downloader(Limits(max_bytes=1 << 30)) as d:
        for i in range(n):
            d.fetch(f"{base}/f/{i}", dest, f"f{i}")


def per_connection(base: str, n: int, dest: Path) -> None:
    for i in range(n):
        with urllib.request.urlopen(f"{base}/f/{i}", timeout=30) as src, (dest / f"u{i}").open("wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)


def raw_keepalive(base: str, n: int, dest: Path) -> None:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    for i in range(n):
        conn.request("GET", f"/f/{i}")
        (dest / f"r{i}").write_bytes(conn.getresponse().read())
    conn.close()


def timed(work: Callable[[str, int, Path], None], base: str, n: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            work(base, n, Path(tmp))
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--size", type=int, default=64 * 1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server, base = serve(args.size)
    try:
        floor = timed(per_connection, base, args.files, args.repeat)
        ours = timed(pooled, base, args.files, args.repeat)
        ceiling = timed(raw_keepalive, base, args.files, args.repeat)
    finally:
        server.shutdown()
        server.server_close()
    print(f"{args.files} files of {args.size} bytes, median of {args.repeat}:")
    print(f"  urllib, a connection per file (the floor it replaced) {floor:8.3f} s")
    print(f"  envspec.download, pooled + hashed + bounded          {ours:8.3f} s  ({ours / floor:.2f}x the floor)")
    print(f"  http.client keep-alive, no checks (ceiling)           {ceiling:8.3f} s  ({ceiling / floor:.2f}x)")
    ok = ours <= GOAL * floor
    print(f"goal: pooled <= {GOAL}x the per-connection floor: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
