"""A Hugging Face Hub on 127.0.0.1 for tests: real huggingface_hub clients talk to it via HF_ENDPOINT.

Faithful to what ``huggingface_hub`` 2.x asks and reads (see its ``file_download.py`` and ``hf_api.py``):

- ``GET /api/models/{repo}/revision/{rev}[?blobs=true]``: ``sha`` (the commit) and ``siblings``; with
  ``blobs=true`` each sibling has ``size``, ``blobId`` (git oid) and, for LFS files,
  ``lfs: {size, sha256, pointerSize}``. Gated repos answer it without a token, as the Hub does.
- ``HEAD|GET /{repo}/resolve/{rev}/{path}``: files kept in git answer 200 with ``ETag`` (git oid),
  ``X-Repo-Commit`` and the body; LFS files answer 302 to a signed URL on a *second* server (the
  "CDN", another origin, so the client drops ``Authorization`` there) with ``X-Linked-Etag`` (sha256),
  ``X-Linked-Size`` and ``X-Repo-Commit``. The CDN honours ``Range`` (206 + ``Content-Range``).
- Errors carry ``X-Error-Code`` / ``X-Error-Message``: ``RepoNotFound`` (401 anonymous, 404 with a
  token), ``RevisionNotFound`` (404), ``EntryNotFound`` (404 with ``X-Repo-Commit``), ``GatedRepo``
  (401 without a token, 403 with a token that was not granted).

Repositories live in a folder: ``<root>/<repo>/blobs/<oid>`` (content), ``commits/<sha>.json``
(path -> oid, size, lfs) and ``refs/<branch>`` (a commit). Faults for the CDN, each by sha256:
``cut`` (close the connection after N bytes, once), ``tamper`` (flip a byte, same length),
``trickle`` (one byte every ``trickle_interval`` seconds, forever); ``xet`` advertises Xet storage
(``X-Xet-Hash``, a ``xet-auth`` link to ``/api/models/{repo}/xet-read-token/{rev}``, whose CAS server
trickles). Every request is logged.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".h5", ".onnx", ".pkl")
CHUNK = 64 * 1024


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Logged:
    server: str  # "hub" or "cdn"
    method: str
    path: str
    status: int = 0
    range: str | None = None
    authorization: str | None = None
    sent: int = 0  # body bytes written


@dataclass
class Faults:
    cut: dict[str, int] = field(default_factory=dict)  # sha256 -> bytes before the connection drops (once)
    tamper: set[str] = field(default_factory=set)
    trickle: set[str] = field(default_factory=set)
    trickle_interval: float = 0.2
    echo_token: bool = False  # a careless server: quotes the Authorization header in its error messages
    forbidden: bool = False  # every file answers 403 without an error code (a proxy, a WAF)
    # Hostile servers (issue #21): each names what a real Hub never sends.
    linked_etag: dict[str, str] = field(default_factory=dict)  # sha256 -> the X-Linked-Etag value sent
    repo_commit: str | None = None  # the X-Repo-Commit value sent for every file
    endless: set[str] = field(default_factory=set)  # sha256: the CDN's body never ends (no Content-Length)
    norange_stall: set[str] = field(default_factory=set)  # sha256: 200 to every Range, half the body, then silence
    retry_after: str | None = None  # every file answers 429 with this Retry-After
    gzip_bomb: set[str] = field(default_factory=set)  # sha256: 64 MiB of zeros, gzip-encoded (small on the wire)
    listing: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> sibling fields replaced in the API
    # sha256: the Hub advertises Xet storage for the file (``X-Xet-Hash`` and a ``Link: rel="xet-auth"`` on
    # /resolve/); its token route names a CAS server (on the CDN's origin) that trickles one byte a second.
    xet: set[str] = field(default_factory=set)
    gzip_listing: bool = False  # the API's listing, valid JSON padded to 64 MiB, gzip-encoded (~64 KiB on the wire)
    endless_api: bool = False  # the API's listing never ends (JSON whitespace, fast; bounded here by 256 MiB)


class FakeHub:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.faults = Faults()
        self.granted: set[str] = set()  # tokens that accepted the licence of gated repos
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.hub = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, "hub"))
        self.cdn = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, "cdn"))
        for server in (self.hub, self.cdn):
            server.daemon_threads = True
        self._threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for s in (self.hub, self.cdn)
        ]

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FakeHub:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        for server in (self.hub, self.cdn):
            server.shutdown()
            server.server_close()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.hub.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"http://127.0.0.1:{self.cdn.server_address[1]}"

    # --- repositories --------------------------------------------------------------------------------

    def create(self, repo: str, *, gated: bool = False, private: bool = False) -> None:
        folder = self.root / repo
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "commits").mkdir(exist_ok=True)
        (folder / "blobs").mkdir(exist_ok=True)
        (folder / "settings.json").write_text(json.dumps({"gated": gated, "private": private}))

    def commit(self, repo: str, files: dict[str, bytes | Path], branch: str = "main") -> str:
        """A new commit holding exactly ``files`` (contents or files to copy); ``branch`` moves to it."""
        folder = self.root / repo
        if not folder.exists():
            self.create(repo)
        tree: dict[str, dict[str, Any]] = {}
        for path, content in sorted(files.items()):
            data = content.read_bytes() if isinstance(content, Path) else content
            lfs = path.endswith(LFS_SUFFIXES)
            oid = hashlib.sha256(data).hexdigest() if lfs else git_oid(data)
            (folder / "blobs" / oid).write_bytes(data)
            pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n"
            tree[path] = {
                "oid": oid,
                "size": len(data),
                "lfs": lfs,
                "pointer_oid": git_oid(pointer.encode()) if lfs else oid,
                "pointer_size": len(pointer),
            }
        sha = secrets.token_hex(20)
        (folder / "commits" / f"{sha}.json").write_text(json.dumps(tree))
        (folder / "refs" / branch.replace("/", "%2F")).write_text(sha)
        return sha

    def tag(self, repo: str, name: str, commit: str) -> None:
        (self.root / repo / "refs" / name.replace("/", "%2F")).write_text(commit)

    def sha256(self, repo: str, path: str, branch: str = "main") -> str:
        commit = self.resolve_rev(repo, branch)
        assert commit is not None
        return str(self.tree(repo, commit)[path]["oid"])

    def settings(self, repo: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.root / repo / "settings.json").read_text())
        return data

    def resolve_rev(self, repo: str, rev: str) -> str | None:
        folder = self.root / repo
        if len(rev) == 40 and (folder / "commits" / f"{rev}.json").exists():
            return rev
        ref = folder / "refs" / rev.replace("/", "%2F")
        return ref.read_text() if ref.is_file() else None

    def tree(self, repo: str, commit: str) -> dict[str, dict[str, Any]]:
        data: dict[str, dict[str, Any]] = json.loads((self.root / repo / "commits" / f"{commit}.json").read_text())
        return data

    def blob(self, repo: str, oid: str) -> Path:
        return self.root / repo / "blobs" / oid

    def find_lfs_blob(self, oid: str) -> Path | None:
        for path in self.root.glob(f"*/*/blobs/{oid}"):
            return path
        return None

    # --- what was asked ----------------------------------------------------------------------------

    def record(self, entry: Logged) -> None:
        with self._lock:
            self.log.append(entry)

    def requests(self, server: str | None = None, method: str | None = None, contains: str = "") -> list[Logged]:
        with self._lock:
            return [
                e
                for e in self.log
                if (server is None or e.server == server)
                and (method is None or e.method == method)
                and contains in e.path
            ]


def _handler(hub: FakeHub, role: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return None

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def do_GET(self) -> None:
            self._serve(head=False)

        # --- plumbing ---------------------------------------------------------------------------

        def _serve(self, head: bool) -> None:
            entry = Logged(
                role,
                self.command,
                self.path,
                range=self.headers.get("Range"),
                authorization=self.headers.get("Authorization"),
            )
            try:
                if role == "cdn":
                    self._cdn(head, entry)
                else:
                    self._hub(head, entry)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            finally:
                hub.record(entry)

        def _token(self) -> str | None:
            auth = self.headers.get("Authorization") or ""
            return auth[7:] if auth.lower().startswith("bearer ") else None

        def _send(
            self, entry: Logged, status: int, headers: dict[str, str], body: bytes = b"", head: bool = False
        ) -> None:
            entry.status = status
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head and body:
                self.wfile.write(body)
                entry.sent += len(body)

        def _error(
            self,
            entry: Logged,
            status: int,
            code: str,
            message: str,
            head: bool,
            *,
            extra: dict[str, str] | None = None,
        ) -> None:
            if hub.faults.echo_token and self.headers.get("Authorization"):
                message += f" (you sent: {self.headers.get('Authorization')})"
            body = json.dumps({"error": message}).encode()
            headers = {"X-Error-Message": message, "Content-Type": "application/json"}
            if code:
                headers["X-Error-Code"] = code
            self._send(entry, status, {**headers, **(extra or {})}, body, head)

        # --- the Hub ------------------------------------------------------------------------------

        def _hub(self, head: bool, entry: Logged) -> None:
            url = urlsplit(self.path)
            path = url.path
            if path.startswith("/api/models/") and "/xet-read-token/" in path:
                self._xet_token(entry, head)
                return
            if path.startswith("/api/models/") and hub.faults.endless_api and not head:
                self._endless(entry, b'{"sha": "', b"0" * CHUNK)  # a commit id that never ends
                return
            if path.startswith("/api/models/"):
                rest = path[len("/api/models/") :]
                repo, _, rev = rest.partition("/revision/")
                self._api(entry, unquote(repo), unquote(rev) or "main", parse_qs(url.query), head)
                return
            repo, sep, rest = path.lstrip("/").partition("/resolve/")
            if not sep:
                self._error(entry, 404, "NotFound", "Not Found", head)
                return
            rev, _, file_path = rest.partition("/")
            self._resolve(entry, unquote(repo), unquote(rev), unquote(file_path), head)

        def _access(self, entry: Logged, repo: str, head: bool, api: bool) -> bool:
            """False (after answering) when the repository may not be read by this request."""
            token = self._token()
            folder = hub.root / repo
            if not (folder / "settings.json").exists():
                status = 404 if token else 401
                self._error(entry, status, "RepoNotFound", "Repository not found", head)
                return False
            settings = hub.settings(repo)
            if settings["private"] and token not in hub.granted:
                self._error(entry, 404 if token else 401, "RepoNotFound", "Repository not found", head)
                return False
            if settings["gated"] and not api:
                if token is None:
                    message = (
                        f"Access to model {repo} is restricted. You must have access to it and be authenticated "
                        "to access it. Please log in."
                    )
                    self._error(entry, 401, "GatedRepo", message, head)
                    return False
                if token not in hub.granted:
                    message = (
                        f"Access to model {repo} is restricted and you are not in the authorized list. "
                        f"Visit {hub.endpoint}/{repo} to ask for access."
                    )
                    self._error(entry, 403, "GatedRepo", message, head)
                    return False
            return True

        def _api(self, entry: Logged, repo: str, rev: str, query: dict[str, list[str]], head: bool) -> None:
            if not self._access(entry, repo, head, api=True):
                return
            commit = hub.resolve_rev(repo, rev)
            if commit is None:
                self._error(entry, 404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
                return
            blobs = query.get("blobs", ["false"])[0].lower() == "true"
            siblings = []
            for path, info in hub.tree(repo, commit).items():
                sibling: dict[str, Any] = {"rfilename": path}
                patch = hub.faults.listing.get(path)
                if blobs:
                    sibling["blobId"] = info["pointer_oid"]
                    sibling["size"] = info["pointer_size"] if info["lfs"] else info["size"]
                    if info["lfs"]:
                        sibling["lfs"] = {
                            "size": info["size"],
                            "sha256": info["oid"],
                            "pointerSize": info["pointer_size"],
                        }
                if patch is not None:
                    sibling.update({k: v for k, v in patch.items() if k != "lfs"})
                    if "lfs" in patch and "lfs" in sibling:
                        sibling["lfs"] = {**sibling["lfs"], **patch["lfs"]}
                siblings.append(sibling)
            settings = hub.settings(repo)
            data = {
                "_id": hashlib.md5(repo.encode()).hexdigest()[:24],
                "id": repo,
                "modelId": repo,
                "author": repo.split("/", maxsplit=1)[0],
                "sha": commit,
                "lastModified": "2026-01-01T00:00:00.000Z",
                "createdAt": "2025-01-01T00:00:00.000Z",
                "private": settings["private"],
                "gated": "auto" if settings["gated"] else False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": ["diffusers"],
                "library_name": "diffusers",
                "siblings": siblings,
            }
            body = json.dumps(data).encode()
            if hub.faults.gzip_listing:
                bomb = gzip.compress(body[:-1] + b" " * (64 << 20) + b"}", 9)
                self._send(entry, 200, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, bomb, head)
                return
            self._send(entry, 200, {"Content-Type": "application/json"}, body, head)

        def _resolve(self, entry: Logged, repo: str, rev: str, path: str, head: bool) -> None:
            if hub.faults.forbidden:
                self._error(entry, 403, "", "Access denied", head)
                return
            if hub.faults.retry_after is not None:
                self._send(entry, 429, {"Retry-After": hub.faults.retry_after}, b"slow down", head)
                return
            if not self._access(entry, repo, head, api=False):
                return
            commit = hub.resolve_rev(repo, rev)
            if commit is None:
                self._error(entry, 404, "RevisionNotFound", f"Invalid rev id: {rev}", head)
                return
            info = hub.tree(repo, commit).get(path)
            if info is None:
                self._error(
                    entry,
                    404,
                    "EntryNotFound",
                    f"{path} does not exist on {rev}",
                    head,
                    extra={"X-Repo-Commit": commit},
                )
                return
            common = {"X-Repo-Commit": hub.faults.repo_commit or commit, "Accept-Ranges": "bytes"}
            if info["lfs"]:
                signed = f"{hub.cdn_url}/lfs/{info['oid']}?X-Amz-Signature={secrets.token_hex(16)}&Expires=9999999999"
                headers = {
                    **common,
                    "Location": signed,
                    "X-Linked-Etag": hub.faults.linked_etag.get(info["oid"], f'"{info["oid"]}"'),
                    "X-Linked-Size": str(info["size"]),
                    "ETag": f'"{info["pointer_oid"]}"',
                }
                if info["oid"] in hub.faults.xet:
                    token_route = f"{hub.endpoint}/api/models/{repo}/xet-read-token/{commit}"
                    headers["X-Xet-Hash"] = hashlib.sha256(b"xet" + info["oid"].encode()).hexdigest()
                    headers["Link"] = f'<{token_route}>; rel="xet-auth"'
                self._send(entry, 302, headers, b"Found. Redirecting", head)
                return
            data = hub.blob(repo, info["oid"]).read_bytes()
            headers = {**common, "ETag": f'"{info["oid"]}"', "Content-Type": "text/plain; charset=utf-8"}
            self._send(entry, 200, headers, data, head)

        def _endless(self, entry: Logged, start: bytes, block: bytes) -> None:
            """A 200 without Content-Length: ``start``, then ``block`` until the client hangs up (or 256 MiB)."""
            entry.status = 200
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self.wfile.write(start)
            while not hub._stop.is_set() and entry.sent < 256 << 20:
                self.wfile.write(block)
                entry.sent += len(block)

        def _xet_token(self, entry: Logged, head: bool) -> None:
            """The Xet read token: where the CAS server is, and a token for it (as the Hub answers)."""
            headers = {
                "X-Xet-Cas-Url": f"{hub.cdn_url}/xet-cas",
                "X-Xet-Access-Token": "xet-" + secrets.token_hex(8),
                "X-Xet-Token-Expiration": str(int(time.time()) + 3600),
                "Content-Type": "application/json",
            }
            self._send(entry, 200, headers, b"{}", head)

        def _xet_cas(self, head: bool, entry: Logged) -> None:
            """A CAS server that never finishes an answer: a byte a second (what a stall guard must catch)."""
            entry.status = 200
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(1 << 20))
            self.end_headers()
            self.close_connection = True
            while not head and not hub._stop.is_set():
                self.wfile.write(b" ")
                self.wfile.flush()
                entry.sent += 1
                hub._stop.wait(1.0)

        # --- the CDN ------------------------------------------------------------------------------

        def _hostile_cdn(self, entry: Logged, oid: str, size: int) -> None:
            """A body without end (bounded here by 64 MiB and the test's stop), or half a body then silence."""
            entry.status = 200
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if oid in hub.faults.norange_stall:
                self.send_header("Content-Length", str(size))
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            if oid in hub.faults.norange_stall:
                self.wfile.write(b"\0" * (size // 2))
                self.wfile.flush()
                entry.sent = size // 2
                hub._stop.wait(30)
                return
            block = b"\0" * CHUNK
            while not hub._stop.is_set() and entry.sent < 64 << 20:
                self.wfile.write(block)
                entry.sent += len(block)

        def _cdn(self, head: bool, entry: Logged) -> None:
            url = urlsplit(self.path)
            if url.path.startswith("/xet-cas/"):
                self._xet_cas(head, entry)
                return
            oid = url.path.rsplit("/", 1)[-1]
            blob = hub.find_lfs_blob(oid) if url.path.startswith("/lfs/") else None
            if blob is None or "X-Amz-Signature" not in url.query:
                self._send(entry, 403, {"Content-Type": "text/plain"}, b"AccessDenied", head)
                return
            size = blob.stat().st_size
            start, end = 0, size - 1
            status = 200
            faults = hub.faults
            if not head and (oid in faults.endless or oid in faults.norange_stall):
                self._hostile_cdn(entry, oid, size)
                return
            if not head and oid in faults.gzip_bomb:
                bomb = gzip.compress(b"\0" * (64 << 20), 9)
                self._send(entry, 200, {"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"}, bomb)
                return
            wanted = self.headers.get("Range")
            if wanted:
                spec = wanted.removeprefix("bytes=")
                first, _, last = spec.partition("-")
                start = int(first) if first else size - int(last)
                end = int(last) if first and last else size - 1
                if start >= size or start > end:
                    self._send(entry, 416, {"Content-Range": f"bytes */{size}"}, b"", head)
                    return
                status = 206
            entry.status = status
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("ETag", f'"{oid}"')
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if head:
                return
            faults = hub.faults
            if oid in faults.trickle:
                while not hub._stop.is_set():
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                    entry.sent += 1
                    time.sleep(faults.trickle_interval)
                return
            with blob.open("rb") as handle:
                handle.seek(start)
                remaining = end - start + 1
                position = start
                cut = faults.cut.pop(oid, None)
                while remaining > 0:
                    chunk = handle.read(min(CHUNK, remaining))
                    if oid in faults.tamper and position <= size // 2 < position + len(chunk):
                        flip = size // 2 - position
                        chunk = chunk[:flip] + bytes([chunk[flip] ^ 0xFF]) + chunk[flip + 1 :]
                    if cut is not None and entry.sent + len(chunk) > cut:
                        self.wfile.write(chunk[: cut - entry.sent])
                        entry.sent = cut
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    self.wfile.write(chunk)
                    entry.sent += len(chunk)
                    position += len(chunk)
                    remaining -= len(chunk)

    return Handler


def copy_folder(folder: Path) -> dict[str, Path]:
    """Every file under ``folder`` by its POSIX path relative to it (for ``FakeHub.commit``)."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
