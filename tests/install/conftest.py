"""A real environment to activate and to pack: the local channel, a real lock, the real installer.

The channel is the lock tests' conda-forge-shaped one (``tests/channel_factory.py``), with two
additions: linux-64 ``python`` ships ``bin/python`` exec'ing this interpreter (so ``envspec run --
python -c ...`` runs real Python), and a package ``envspec-activate-test`` ships
``etc/conda/activate.d`` scripts for every shell and an ``env_vars.d`` file, as packages such as
``gdal`` or ``cuda-nvcc`` do. The project is the repository's spec plus that package and a target
variable whose value a careless shell would execute; ``linux-cuda`` is locked against the channel
(real conda-lock, envspec's rattler shim) and installed through a local HTTP mirror.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.util
import io
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from envspec.cli.main import main

REPO = Path(__file__).resolve().parents[2]
FACTORY = REPO / "tests" / "channel_factory.py"
ACTIVATE_PKG = "envspec-activate-test"
#: What the package's activate.d scripts export, and the value of its env_vars.d variable.
ACTIVATED = "set by activate.d"
#: A target variable that runs a command in any shell that expands it instead of quoting it.
HOSTILE_VALUE = 'a $(touch PWNED) `touch PWNED` "q" \'s %PATH% ^&| \\ end'

_BUILD = """
import importlib.util, os, sys
from dataclasses import replace
from pathlib import Path
spec = importlib.util.spec_from_file_location("cf", sys.argv[1])
cf = importlib.util.module_from_spec(spec); sys.modules["cf"] = cf; spec.loader.exec_module(cf)
files = (
    ("etc/conda/activate.d/envspec-test.sh", 'export ENVSPEC_TEST_ACTIVATED="{value}"\\n[ -n "$NOPE" ] && :\\n'),
    ("etc/conda/activate.d/envspec-test.fish", 'set -gx ENVSPEC_TEST_ACTIVATED "{value}"\\n'),
    ("etc/conda/activate.d/envspec-test.ps1", '$Env:ENVSPEC_TEST_ACTIVATED = "{value}"\\n'),
    ("etc/conda/activate.d/envspec-test.bat", '@SET "ENVSPEC_TEST_ACTIVATED={value}"\\n'),
    ("etc/conda/env_vars.d/envspec-test.json", '{"ENVSPEC_TEST_ENV_VARS_D": "from env_vars.d"}\\n'),
)
extra = cf.Pkg("{name}", "1.0", "h0_0", 0, "noarch", noarch="generic", files=files)
cf.build_channel(Path(sys.argv[2]), [*cf.with_python_launcher(cf.stack_packages(), sys.argv[3]), extra])
sys.stdout.flush(); os._exit(0)
""".replace("{value}", ACTIVATED).replace("{name}", ACTIVATE_PKG)


def load_factory() -> ModuleType:
    spec = importlib.util.spec_from_file_location("envspec_test_channel_factory", FACTORY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def envspec_inproc(project: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--spec", str(project / "envspec.yml"), *args])
    return code, out.getvalue(), err.getvalue()


def envspec(
    project: Path, *args: str, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    """``envspec ARGS`` in a child process, as a user runs it (no mirror from the caller's shell)."""
    environ = {k: v for k, v in os.environ.items() if k not in ("ENVSPEC_MIRRORS", "CONDA_PREFIX")}
    environ.update({"PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [sys.executable, "-m", "envspec", "--spec", str(project / "envspec.yml"), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=180,
        check=False,
        **kw,
    )


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    """A local HTTP server for ``root`` (a channel mirror) while the block runs."""
    handler = functools.partial(_Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Built:
    project: Path  # rendered, linux-cuda locked (canonical conda-forge URLs)
    channel: Path  # the local channel the lock was solved against
    prefix: Path  # linux-cuda installed from the lock through an HTTP mirror of the channel
    cache: Path


@pytest.fixture(scope="session")
def built_env(tmp_path_factory: pytest.TempPathFactory) -> Built:
    base = tmp_path_factory.mktemp("carry")
    channel = base / "conda-forge-local"
    subprocess.run(
        [sys.executable, "-c", _BUILD, str(FACTORY), str(channel), sys.executable], check=True, capture_output=True
    )
    project = base / "proj"
    project.mkdir()

    spec = yaml.safe_load((REPO / "tests" / "data" / "synthetic" / "envspec.yml").read_text(encoding="utf-8"))
    spec["dependencies"].append(ACTIVATE_PKG)
    spec["targets"]["linux-cuda"]["variables"] = {"TEST_HOSTILE": HOSTILE_VALUE, "TEST_SPACE": "x y"}
    (project / "envspec.yml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    assert envspec_inproc(project, "render")[0] == 0
    mirror = f"conda-forge={channel.as_uri()}"
    code, _, err = envspec_inproc(project, "lock", "--target", "linux-cuda", "--mirror", mirror)
    assert code == 0, err
    prefix, cache = base / "env with space", base / "pkgs"
    with serve(channel) as url:
        proc = envspec(project, "install", "linux-cuda", "--prefix", str(prefix), "--cache-dir", str(cache),
                       "--mirror", f"conda-forge={url}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return Built(project=project, channel=channel, prefix=prefix, cache=cache)
