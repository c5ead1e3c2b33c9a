"""A local PEP 503 index for the PyPI tests: real wheels (and an sdist) built here, served on 127.0.0.1.

Wheels are assembled by hand (a zip with ``METADATA``, ``WHEEL`` and a ``RECORD`` of sha256s),
so no build tool and no network is needed. ``serve(root)`` starts a ``ThreadingHTTPServer`` on
port 0 in a thread; the project pages link each file with its ``#sha256=`` as PyPI does, and
its PEP 658 ``.metadata`` file (``data-dist-info-metadata``). Optional basic auth tests that
credentials reach the index but no file or message.

``recorded()`` gives the projects of ``tests/data/pypi/metadata``: real PyPI metadata (torch with
its ``nvidia-*`` requirements, torchvision, accelerate...; see ``tests/data/pypi/record.py`` and
``provenance.json``), each as a tiny wheel of the real file name whose ``METADATA`` is PyPI's.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import io
import tarfile
import threading
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def _dist(name: str) -> str:
    return name.replace("-", "_")


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@dataclass(frozen=True)
class Project:
    name: str
    version: str
    requires: tuple[str, ...] = ()
    tag: str = "py3-none-any"
    sdist_only: bool = False
    module_body: str = ""
    scripts: dict[str, str] = field(default_factory=dict)  # console scripts: name -> "module:function"
    metadata: str | None = None  # a recorded METADATA (real PyPI), used as it is
    wheel_name: str | None = None  # the recorded wheel's real file name
    build_marker: str | None = None  # sdist_only: its build backend (in the sdist) writes this file when it runs

    @property
    def module(self) -> str:
        return _dist(self.name)

    @property
    def filename(self) -> str:
        if self.wheel_name is not None:
            return self.wheel_name
        if self.sdist_only:
            return f"{_dist(self.name)}-{self.version}.tar.gz"
        return f"{_dist(self.name)}-{self.version}-{self.tag}.whl"


def _metadata(p: Project) -> str:
    if p.metadata is not None:
        return p.metadata
    # an sdist's PKG-INFO is 2.2 (PEP 643: nothing dynamic), so a resolver may read it without building
    lines = [f"Metadata-Version: {'2.2' if p.sdist_only else '2.1'}", f"Name: {p.name}", f"Version: {p.version}"]
    lines += [f"Requires-Dist: {r}" for r in p.requires]
    return "\n".join(lines) + "\n"


def wheel_bytes(p: Project) -> bytes:
    info = f"{_dist(p.name)}-{p.version}.dist-info"
    body = (
        p.module_body
        or f"__version__ = {p.version!r}\nNAME = {p.name!r}\n\ndef main():\n    print(NAME, __version__)\n"
    )
    files: list[tuple[str, bytes]] = [
        (f"{p.module}/__init__.py", body.encode()),
        (f"{info}/METADATA", _metadata(p).encode()),
        (
            f"{info}/WHEEL",
            (
                "Wheel-Version: 1.0\nGenerator: envspec-tests\n"
                f"Root-Is-Purelib: {'true' if p.tag.endswith('any') else 'false'}\nTag: {p.tag}\n"
            ).encode(),
        ),
    ]
    if p.scripts:
        entry = "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in p.scripts.items())
        files.append((f"{info}/entry_points.txt", entry.encode()))
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in files) + f"{info}/RECORD,,\n"
    files.append((f"{info}/RECORD", record.encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files:
            zf.writestr(zipfile.ZipInfo(path, date_time=(2026, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


#: An in-tree PEP 517 backend (no build requirements: works offline) that writes ``MARKER`` the moment
#: it is imported, i.e. whenever anything runs it, for metadata or a wheel.
BACKEND = """import base64, hashlib, os, pathlib, zipfile
pathlib.Path(MARKER).write_text("the build backend of " + NAME + " ran\\n")
DIST = NAME.replace("-", "_")
INFO = DIST + "-" + VERSION + ".dist-info"


def _metadata():
    return "Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n" % (NAME, VERSION) + "".join(
        "Requires-Dist: %s\\n" % r for r in REQUIRES)


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    os.makedirs(os.path.join(metadata_directory, INFO))
    with open(os.path.join(metadata_directory, INFO, "METADATA"), "w") as f:
        f.write(_metadata())
    return INFO


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = {DIST + "/__init__.py": ("__version__ = %r\\n" % VERSION).encode(),
             INFO + "/METADATA": _metadata().encode(),
             INFO + "/WHEEL": b"Wheel-Version: 1.0\\nGenerator: test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"}
    digest = lambda d: base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
    record = "".join("%s,sha256=%s,%d\\n" % (p, digest(d), len(d)) for p, d in files.items()) + INFO + "/RECORD,,\\n"
    files[INFO + "/RECORD"] = record.encode()
    name = "%s-%s-py3-none-any.whl" % (DIST, VERSION)
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for p, d in files.items():
            zf.writestr(p, d)
    return name
"""


def _backend_members(p: Project, base: str) -> dict[str, bytes]:
    """An sdist whose metadata only its build backend can tell (``dynamic``; PKG-INFO 2.1)."""
    head = f"MARKER = {p.build_marker!r}\nNAME = {p.name!r}\nVERSION = {p.version!r}\nREQUIRES = {list(p.requires)!r}\n"
    return {
        f"{base}/PKG-INFO": f"Metadata-Version: 2.1\nName: {p.name}\nVersion: {p.version}\n".encode(),
        f"{base}/pyproject.toml": (
            '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n\n'
            f'[project]\nname = {p.name!r}\ndynamic = ["version", "dependencies"]\n'
        ).encode(),
        f"{base}/backend.py": (head + BACKEND).encode(),
    }


def sdist_bytes(p: Project) -> bytes:
    base = f"{_dist(p.name)}-{p.version}"
    members = (
        _backend_members(p, base)
        if p.build_marker
        else {
            f"{base}/PKG-INFO": _metadata(p).encode(),
            f"{base}/pyproject.toml": (
                '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n'
                f"[project]\nname = {p.name!r}\nversion = {p.version!r}\ndependencies = {list(p.requires)!r}\n"
            ).encode(),
            f"{base}/{p.module}/__init__.py": f"__version__ = {p.version!r}\n".encode(),
        }
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for path, data in members.items():
            ti = tarfile.TarInfo(path)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def build_files(root: Path, projects: Sequence[Project]) -> None:
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    for p in projects:
        (files / p.filename).write_bytes(sdist_bytes(p) if p.sdist_only else wheel_bytes(p))
        if not p.sdist_only:  # PEP 658: the wheel's METADATA beside it
            (files / f"{p.filename}.metadata").write_bytes(_metadata(p).encode())


RECORDED = Path(__file__).resolve().parent / "data" / "pypi" / "metadata"


def recorded(names: Sequence[str] | None = None) -> list[Project]:
    """The recorded real-PyPI projects (all, or those of ``names``), as tiny wheels of their real names."""
    out = []
    for path in sorted(RECORDED.glob("*.whl.metadata")):
        text = path.read_text(encoding="utf-8")
        fields = dict(line.split(": ", 1) for line in text.splitlines()[:8] if ": " in line)
        name = fields["Name"].lower().replace("_", "-")
        if names is None or name in names:
            tag = "-".join(path.name.removesuffix(".whl.metadata").split("-")[-3:])
            wheel = path.name.removesuffix(".metadata")
            out.append(Project(name, fields["Version"], tag=tag, metadata=text, wheel_name=wheel))
    return out


def write_pages(root: Path, base_url: str) -> None:
    """``simple/index.html`` and ``simple/<project>/index.html`` for every file in ``root/files``."""
    by_project: dict[str, list[Path]] = {}
    for f in sorted((root / "files").iterdir()):
        if f.name.endswith(".metadata"):
            continue
        name = f.name.split("-", 1)[0].replace("_", "-").lower()
        by_project.setdefault(name, []).append(f)
    simple = root / "simple"
    simple.mkdir(exist_ok=True)
    links = "".join(f'<a href="{n}/">{n}</a>\n' for n in sorted(by_project))
    (simple / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    for name, files in by_project.items():
        (simple / name).mkdir(exist_ok=True)
        anchors = "".join(
            f'<a href="{html.escape(base_url)}/files/{f.name}#sha256={hashlib.sha256(f.read_bytes()).hexdigest()}"'
            f"{_core_metadata(f)}>{f.name}</a><br>\n"
            for f in files
        )
        (simple / name / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{anchors}</body></html>\n")


def _core_metadata(f: Path) -> str:
    meta = f.with_name(f.name + ".metadata")
    if not meta.is_file():
        return ""
    digest = hashlib.sha256(meta.read_bytes()).hexdigest()
    return f' data-dist-info-metadata="sha256={digest}" data-core-metadata="sha256={digest}"'


class _Handler(SimpleHTTPRequestHandler):
    auth: str | None = None
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if self.auth is not None and self.headers.get("Authorization") != f"Basic {self.auth}":
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="test"')
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Index:
    root: Path
    port: int
    requests: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/simple"

    def file(self, filename: str) -> Path:
        return self.root / "files" / filename


@contextlib.contextmanager
def serve(root: Path, projects: Sequence[Project], auth: tuple[str, str] | None = None) -> Iterator[Index]:
    build_files(root, projects)
    requests: list[str] = []
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode() if auth else None
    handler = type("Handler", (_Handler,), {"auth": token, "requests": requests})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    port = server.server_address[1]
    write_pages(root, f"http://127.0.0.1:{port}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Index(root, port, requests)
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------------------------------------
# A conda solution to resolve on top of (tests/lock/test_pypi_resolve.py, benchmarks/bench_pypi.py)
# ---------------------------------------------------------------------------------------------

SUBDIR = "linux-64"
VPKG = "subdirs:\n  linux-64:\n    packages:\n      __cuda: '12.9'\n      __glibc: '2.28'\n"
PYTORCH_BUILD = "cuda129_mkl_py312_hfde4d7d_304"
#: (name, version, build, depends on python): real linux-64 conda-forge records first (names, versions and
#: builds copied from ../shared/data/conda-forge-records.tar.gz), then illustrative versions (the snapshot lacks them).
CONDA = [
    ("python", "3.12.11", "h9e4cc4f_0_cpython", False),
    ("pytorch", "2.7.1", PYTORCH_BUILD, True),
    ("numpy", "2.3.0", "py312h6cf2f7f_0", True),
    ("pillow", "11.2.1", "py312h80c1187_0", True),
    # the Hugging Face stack and the usual pure-Python packages (illustrative conda-forge versions)
    ("transformers", "4.20.1", "pyhd8ed1ab_0", True),
    ("diffusers", "0.34.0", "pyhd8ed1ab_0", True),
    ("huggingface_hub", "0.34.4", "pyhd8ed1ab_0", True),
    ("safetensors", "0.5.3", "py312h12e396e_0", True),
    ("pyyaml", "6.0.2", "py312h178313f_2", True),
    ("packaging", "25.0", "pyh29332c3_1", True),
    ("psutil", "7.0.0", "py312h66e93f0_0", True),
    ("typing_extensions", "4.14.1", "pyhe01879c_0", True),
    ("setuptools", "80.9.0", "pyhff2d567_0", True),
    ("notebook", "7.4.5", "pyhd8ed1ab_0", True),
    ("filelock", "3.18.0", "pyhd8ed1ab_0", True),
]


def conda_lock_text(records: list[tuple[str, str, str, bool]] = CONDA) -> str:
    """A conda-lock v1 file of ``records`` for linux-64, as conda-lock writes one."""
    import yaml

    packages = [
        {
            "name": name,
            "version": version,
            "manager": "conda",
            "platform": SUBDIR,
            "dependencies": {"python": ">=3.12,<3.13.0a0"} if python else {},
            "url": f"https://conda.anaconda.org/conda-forge/{SUBDIR}/{name}-{version}-{build}.conda",
            "hash": {"md5": "0" * 32, "sha256": "1" * 64},
            "category": "main",
            "optional": False,
        }
        for name, version, build, python in records
    ]
    meta = {
        "content_hash": {SUBDIR: "x"},
        "channels": [{"url": "conda-forge", "used_env_vars": []}],
        "platforms": [SUBDIR],
        "sources": ["environment-linux-cuda.yml"],
        "custom_metadata": {"envspec-input-hash": "sha256:" + "c" * 64},
    }
    return yaml.safe_dump({"version": 1, "metadata": meta, "package": packages}, sort_keys=False)


# ---------------------------------------------------------------------------------------------
# The conda side: the lock tests' channel plus `pip`, with a python that has its own site-packages
# ---------------------------------------------------------------------------------------------


def launcher(interpreter: str) -> str:
    """``bin/python`` of the test channel: execs ``interpreter`` (another X.Y than the channel's
    python record, whose X.Y names the site-packages envspec installs into) with the ``sitecustomize``
    below first on its path."""
    return (
        "#!/bin/sh\n"
        'prefix=$(cd "$(dirname "$0")/.." && pwd)\n'
        'export ENVSPEC_TEST_PREFIX="$prefix"\n'
        f'PYTHONPATH="$prefix/envspec-test-site${{PYTHONPATH:+:$PYTHONPATH}}" exec "{interpreter}" "$@"\n'
    )


#: Makes importable the top-level modules of what envspec installed from PyPI into the prefix
#: (dist-infos whose INSTALLER is envspec), and nothing else of its site-packages: the channel's
#: stand-in packages there must not shadow (or add to) the interpreter's real torch stack.
SITECUSTOMIZE = """import glob, os, sys
from importlib.machinery import PathFinder
prefix = os.environ.get("ENVSPEC_TEST_PREFIX", "/nonexistent")
sites = glob.glob(os.path.join(prefix, "lib", "python3.*", "site-packages"))
names = set()
for info in glob.glob(os.path.join(prefix, "lib", "python3.*", "site-packages", "*.dist-info")):
    try:
        if open(os.path.join(info, "INSTALLER")).read().strip() != "envspec":
            continue
        rows = open(os.path.join(info, "RECORD")).read().splitlines()
    except OSError:
        continue
    names |= {r.split(",")[0].split("/")[0].removesuffix(".py") for r in rows if not r.startswith("..")}


class EnvspecInstalled:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return PathFinder.find_spec(name, sites) if path is None and name in names else None


sys.meta_path.append(EnvspecInstalled)
"""


def _build_channel(root: Path, interpreter: str) -> None:  # runs in a child (py-rattler)
    import sys
    from dataclasses import replace

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import channel_factory as cf

    pkgs = [*cf.stack_packages(), cf._noarch("pip", "25.3", ())]
    files = (("bin/python", launcher(interpreter)), ("envspec-test-site/sitecustomize.py", SITECUSTOMIZE))
    pkgs = [replace(p, files=files) if p.name == "python" and p.subdir == "linux-64" else p for p in pkgs]
    cf.build_channel(root, pkgs)


if __name__ == "__main__":
    import os
    import sys

    _build_channel(Path(sys.argv[1]), sys.argv[2])
    sys.stdout.flush()
    os._exit(0)  # py-rattler may crash at interpreter exit
