"""PyPI packages beside the conda packages of a target: index, conda part, PyPI part, ``<t>.pip.txt``.

conda-lock solves the conda part of a pip target alone: envspec hands it the rendered environment
file without its ``pip:`` section (:func:`prepare`). The PyPI part is then resolved by uv on top of
that conda solution (:mod:`envspec.lock.pypi_resolve`): every PyPI distribution a conda package of
the solution provides is fixed at its conda version with no dependencies of its own, so PyPI never
contributes a second torch, its ``nvidia-*`` wheels or a second numpy, and a pip requirement that
contradicts the conda solution fails at once (exit 4) with uv's explanation, naming the conda
package. :func:`finish` writes the result where conda-lock itself would have: ``manager: pip``
entries of ``<t>.conda-lock.yml`` (as conda-lock's own writer prints them, so ``conda-lock
render`` and ``conda-lock install`` read them), ``# pip NAME @ URL#sha256=...`` lines of the explicit
``<t>.lock``, and ``lockfiles/<t>.pip.txt`` (``name==version --hash=sha256:...``, the file plain pip
installs with ``--no-deps --require-hashes``).

* the **index**: ``https://pypi.org/simple``, or the ``pypi`` mirror (``--mirror pypi=URL`` /
  ``ENVSPEC_MIRRORS``); credentials reach uv only as environment variables
  (``UV_INDEX_ENVSPEC_PYPI_USERNAME``/``_PASSWORD``) and are checked to stay out of every output;
* the **PyPI <-> conda name mapping**: :mod:`envspec.lock.pypi_mapping` (shipped, with provenance;
  refresh with ``nox -s pypi_mapping``).

What uv returns is what is written, or refused by name: a source distribution unless
``pip_allow_sdist`` names it, a package without a sha256, a distribution a conda package of the
solution already provides, and PyPI torch's CUDA runtime wheels (:data:`TORCH_RUNTIME_WHEELS`,
the names PyPI torch's own metadata lists) beside conda's pytorch. What is written is checked
against the bytes: every pinned file is downloaded and hashed (:mod:`envspec.lock.pypi_verify`).
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from envspec.errors import SpecError, ToolFailed, UnsatisfiableError
from envspec.lock.condalock import PipPackage, read_pip_packages
from envspec.lock.pypi_mapping import MAPPING_FILE, conda_to_pypi, pypi_to_conda
from envspec.lock.pypi_parts import CondaPart, PipRun

DEFAULT_INDEX: Final = "https://pypi.org/simple"
MIRROR_NAME: Final = "pypi"
USERNAME_ENV: Final = "UV_INDEX_ENVSPEC_PYPI_USERNAME"  # uv's credentials of its index "envspec-pypi"
PASSWORD_ENV: Final = "UV_INDEX_ENVSPEC_PYPI_PASSWORD"
PIP_SUFFIX: Final = ".pip.txt"
HASH_KEY: Final = "envspec-input-hash"
_HASH_LINE = re.compile(rf"^#\s*{HASH_KEY}:\s*(sha256:[0-9a-f]{{64}})\s*$", re.MULTILINE)
_PIN_LINE = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>\S+)\s+--hash=sha256:(?P<sha256>[0-9a-f]{64})\s*$"
)


# ---------------------------------------------------------------------------------------------
# The index
# ---------------------------------------------------------------------------------------------


def redact(url: str) -> str:
    """``url`` without its user-info (``https://u:p@host/x`` -> ``https://host/x``)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


@dataclass(frozen=True)
class PipIndex:
    """The index the pip packages are locked (and, by default, installed) from."""

    url: str  # without credentials: what the input hash, messages and lockfiles may show
    username: str | None = None
    password: str | None = None

    @property
    def has_credentials(self) -> bool:
        return self.username is not None

    def child_env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.username is not None:
            env[USERNAME_ENV] = self.username
        if self.password is not None:
            env[PASSWORD_ENV] = self.password
        return env

    def secrets(self) -> list[str]:
        """Credential texts that must never appear in an output: the password, or a lone username
        (a token: ``https://TOKEN@host/simple``), and a path or query token of the URL (``/t/TOKEN/``)."""
        from envspec.channels import url_secrets

        secret = self.password if self.password else self.username
        return ([secret] if secret else []) + url_secrets(self.url)


def pip_index(mirrors: Mapping[str, str]) -> PipIndex:
    """The ``pypi`` mirror (credentials split off), else PyPI itself."""
    url = mirrors.get(MIRROR_NAME)
    if not url:
        return PipIndex(DEFAULT_INDEX)
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https", "file"}:
        raise SpecError(
            f"--mirror {MIRROR_NAME}=...: {parts.scheme}:// is not a PyPI index URL",
            tip=f"give a PEP 503 simple index, e.g. --mirror {MIRROR_NAME}=https://mirror.example/pypi/simple",
        )
    from urllib.parse import unquote

    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if username is None:  # --mirror/ENVSPEC_MIRRORS keep credentials out of the URL (envspec.channels)
        from envspec.channels import credentials_for

        creds = credentials_for(url)
        if creds is not None:
            username, password = creds.username, creds.password
    return PipIndex(redact(url).rstrip("/"), username, password)


def mapping_digest() -> str:
    """sha256 of the shipped PyPI <-> conda mapping (part of a pip target's input hash)."""
    return hashlib.sha256(MAPPING_FILE.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# The job, and the conda-lock run of its conda part
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipJob:
    """What locking a target's pip packages needs beyond its conda part."""

    requirements: tuple[str, ...]
    allow_sdist: frozenset[str]
    index: PipIndex
    conda_names: frozenset[str] = frozenset()  # the conda packages the spec names for the target
    exclude_newer: str | None = None  # `envspec lock --exclude-newer`: uv's cutoff too


def hash_components(job: PipJob | None) -> tuple[tuple[str, str], ...]:
    """What a pip target's lock depends on beyond its files: the index (no credentials), the
    mapping and the resolver's version."""
    if job is None:
        return ()
    from envspec.lock.pypi_version import resolver_version

    return (("index", job.index.url), ("pypi_mapping", mapping_digest()), ("resolver", resolver_version()))


def requested(job: PipJob | None) -> frozenset[str]:
    """The PyPI names a target asks for directly (what ``--update`` may name)."""
    return requested_names(job.requirements) if job is not None else frozenset()


def make_pip_job(target: Any, mirrors: Mapping[str, str], exclude_newer: str | None = None) -> PipJob | None:
    """The pip part of a target (``ResolvedTarget.pip``), None when it has none."""
    requirements = tuple(getattr(target, "pip", ()) or ())
    if not requirements:
        return None
    allow = frozenset(_canonical(n) for n in getattr(target, "pip_allow_sdist", ()) or ())
    conda = frozenset(_conda_spec_name(d) for d in getattr(target, "dependencies", ()))
    return PipJob(requirements, allow, pip_index(mirrors), conda, exclude_newer)


def _conda_spec_name(match_spec: str) -> str:
    text = match_spec.strip().split("::", 1)[-1]
    return re.split(r"[\s=<>!~\[;]", text, maxsplit=1)[0].lower()


def requirement_name(requirement: str) -> str:
    from packaging.requirements import Requirement

    return _canonical(Requirement(requirement).name)


def conda_names_of_pypi() -> dict[str, str]:
    """The shipped mapping as {PyPI name: conda name} (``torch`` -> ``pytorch``)."""
    return pypi_to_conda()


def requested_names(requirements: Sequence[str]) -> frozenset[str]:
    from packaging.requirements import Requirement

    return frozenset(_canonical(Requirement(r).name) for r in requirements)


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def lock_environment_text(env_text: str) -> str:
    """The environment file conda-lock reads for a pip target: the rendered one without its
    ``pip:`` section (conda-lock solves the conda part only; uv the rest, :func:`finish`)."""
    import json

    import yaml

    data = yaml.safe_load(env_text)
    if isinstance(data, dict):
        data["dependencies"] = [
            dep for dep in data.get("dependencies") or [] if not (isinstance(dep, dict) and "pip" in dep)
        ]
    return (
        "# written by `envspec lock` for conda-lock from the rendered environment file, without its pip: section\n"
        + json.dumps(data, indent=1, ensure_ascii=False)
        + "\n"
    )


def lock_env_path(env_file: Path, pid: int) -> Path:
    """Where that file is written: beside the real one (same relative paths in conda-lock's metadata)."""
    return env_file.with_name(f".{env_file.name}.envspec-tmp-{pid}.yml")


def prepare(
    job: PipJob, *, env_file: Path, env_bytes: bytes, argv: list[str], env: dict[str, str], scratch: Path
) -> Path:
    """Write the environment file conda-lock reads (its conda part only). ``argv``/``env`` need
    nothing for the PyPI part any more: conda-lock never sees the index or its credentials."""
    import os

    del job, argv, env, scratch  # kept for the caller's signature
    path = lock_env_path(env_file, os.getpid())
    path.write_text(lock_environment_text(env_bytes.decode("utf-8")), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------------------------


def diff_entries(text: str | None, source: str) -> dict[str, tuple[str, str]]:
    """``{"NAME (pypi)": (version, wheel tag or "sdist")}`` for ``envspec diff``."""
    if not text:
        return {}
    return {f"{p.name} (pypi)": (p.version, p.tag) for p in read_pip_packages(text, source)}


def check_locked(target: str, packages: Sequence[PipPackage], job: PipJob) -> None:
    """Refuse what envspec cannot install hash-checked and without surprises."""
    unhashed = [p.name for p in packages if p.sha256 is None]
    if unhashed:
        raise ToolFailed(
            f"target {target}: the index gave no sha256 for pip package(s) {', '.join(unhashed)}",
            tip="use an index that publishes hashes (PEP 503 #sha256= links), e.g. https://pypi.org/simple",
        )
    sdists = [p for p in packages if p.is_sdist and p.name not in job.allow_sdist]
    if sdists:
        names = ", ".join(f"{p.name} {p.version} ({p.filename})" for p in sdists)
        raise UnsatisfiableError(
            f"target {target}: no wheel fits this target for {names}; only a source distribution, "
            "which needs building (often a compiler)",
            tip="pin a version that has a wheel for the target's python and platform, or allow the build: "
            f"pip_allow_sdist: [{', '.join(p.name for p in sdists)}] in envspec.yml",
        )


#: PyPI torch's own CUDA runtime: the names the ``Requires-Dist`` of PyPI's torch 2.2-2.15 wheels
#: (CPython 3.12, manylinux x86-64 and aarch64; read from pypi.org 2026-12-07) list beside
#: ``filelock``, ``sympy``..., and, since torch 2.11 (CUDA 13), the library wheels of the
#: ``cuda-toolkit[cublas,cudart,...]`` extras torch names (cuda-toolkit 13.0.2, 13.0.3.0 and 13.2.2
#: list the same eleven). ``tests/data/pypi`` records torch 2.7.1, 2.9.0 and 2.13.0 and
#: cuda-toolkit 13.0.3.0, and a test derives this set from them. Conda's pytorch brings its CUDA
#: libraries as conda packages, so these would be a second copy (gigabytes). Refused by these names,
#: never by a prefix: ``nvidia-ml-py`` (NVML bindings, which pynvml needs and conda's pytorch does not
#: provide) is fine.
TORCH_RUNTIME_WHEELS: Final = frozenset(
    {
        # CUDA 12 (torch 2.2-2.10)
        "nvidia-cublas-cu12",
        "nvidia-cuda-cupti-cu12",
        "nvidia-cuda-nvrtc-cu12",
        "nvidia-cuda-runtime-cu12",
        "nvidia-cudnn-cu12",
        "nvidia-cufft-cu12",
        "nvidia-cufile-cu12",
        "nvidia-curand-cu12",
        "nvidia-cusolver-cu12",
        "nvidia-cusparse-cu12",
        "nvidia-cusparselt-cu12",
        "nvidia-nccl-cu12",
        "nvidia-nvjitlink-cu12",
        "nvidia-nvshmem-cu12",
        "nvidia-nvtx-cu12",
        # CUDA 13 (torch 2.11-2.15): torch's own requirements...
        "cuda-bindings",
        "cuda-toolkit",
        "nvidia-cudnn-cu13",
        "nvidia-cusparselt-cu13",
        "nvidia-nccl-cu13",
        "nvidia-nvshmem-cu13",
        # ... and what cuda-toolkit's extras that torch names install
        "nvidia-cublas",
        "nvidia-cuda-cupti",
        "nvidia-cuda-nvrtc",
        "nvidia-cuda-runtime",
        "nvidia-cufft",
        "nvidia-cufile",
        "nvidia-curand",
        "nvidia-cusolver",
        "nvidia-cusparse",
        "nvidia-nvjitlink",
        "nvidia-nvtx",
        "triton",
    }
)
TORCH_CONDA_NAMES: Final = frozenset({"pytorch", "libtorch", "pytorch-gpu", "pytorch-cpu"})


def check_not_twice(target: str, packages: Sequence[PipPackage], conda_names: frozenset[str]) -> None:
    """No PyPI package may install what a conda package of the solution already is (pure)."""
    to_conda = pypi_to_conda()
    provided = {name for conda in conda_names for name in conda_to_pypi().get(conda, ())}
    twice = sorted(p.name for p in packages if p.name in provided or to_conda.get(p.name, p.name) in conda_names)
    if twice:
        pairs = ", ".join(f"{n} (conda's {to_conda.get(n, n)})" for n in twice)
        raise UnsatisfiableError(
            f"target {target}: the pip solution would install {pairs} from PyPI beside the conda packages that "
            "already provide them",
            tip="a pip package depends on them by their PyPI names: pin a version of it that does not, "
            "or take that package from conda-forge instead",
        )
    runtime = sorted(p.name for p in packages if p.name in TORCH_RUNTIME_WHEELS)
    if runtime and conda_names & TORCH_CONDA_NAMES:
        raise UnsatisfiableError(
            f"target {target}: the pip solution would install {', '.join(runtime)} from PyPI: PyPI torch's own "
            "CUDA runtime, beside conda's pytorch, which brings its CUDA libraries as conda packages",
            tip="a pip package depends on them directly: pin a version of it that does not, or take it from "
            "conda-forge instead",
        )


def finish(job: PipJob, conda: CondaPart, run: PipRun) -> tuple[str, str, str]:
    """Resolve the PyPI part on top of conda-lock's conda solution and merge it in: (conda-lock.yml
    text, explicit text, ``<t>.pip.txt`` text). Raises EnvspecError. Every pinned file is downloaded
    and its sha256 checked before anything is returned (:mod:`envspec.lock.pypi_verify`)."""
    import dataclasses
    import tempfile

    from envspec.lock import pypi_merge
    from envspec.lock.pypi_verify import verify

    target, subdir, lock_text, explicit_text = conda.target, conda.subdir, conda.lock_text, conda.explicit_text
    verbose = run.verbose
    records = pypi_merge.conda_part(lock_text, subdir)
    with tempfile.TemporaryDirectory(prefix=f"envspec-pypi-{target}-", dir=run.work) as tmp:
        packages = pypi_merge.resolve(
            job, conda, dataclasses.replace(run, work=Path(tmp)), scrub=lambda text: scrub(job, text), records=records
        )
        check_locked(target, packages, job)
        check_not_twice(target, packages, frozenset(r.name for r in records))
        checked = verify(
            packages, target=target, index=job.index, work=Path(tmp), seen=run.verified, limits=run.limits.fetch
        )
        if verbose:
            sys.stderr.write(f"{target}: {checked.files} PyPI file(s) verified, {checked.bytes} bytes, "
                             f"{checked.seconds:.1f} s\n")  # fmt: skip
        fast = pypi_merge.merge_conda_lock_fast(lock_text, packages, subdir)
        # not the shape conda-lock writes: through its own model (slower, same result)
        lock_text = fast or pypi_merge.merge_conda_lock(lock_text, packages, subdir, Path(tmp) / conda.lock_name)
    explicit_text = pypi_merge.merge_explicit(explicit_text, packages)
    check_no_secrets(job, lock_text, explicit_text)
    written = read_pip_packages(lock_text, "the merged conda-lock.yml", subdir)
    if sorted(written, key=lambda p: p.name) != sorted(packages, key=lambda p: p.name):
        raise ToolFailed(f"{target}: the pip packages written to conda-lock.yml differ from uv's resolution")
    text = render_pip_txt(target=target, subdir=subdir, input_hash=conda.input_hash, index=job.index, packages=packages)
    return lock_text, explicit_text, text


def commit(path: Path, text: str | None) -> None:
    """Write (atomically) or, for a target without pip packages, remove ``<t>.pip.txt``."""
    from envspec.fsutil import atomic_write_text

    if text is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write_text(path, text)


def scrub(job: PipJob | None, text: str) -> str:
    """``text`` with the pypi mirror's credentials replaced by ``***``."""
    for secret in job.index.secrets() if job is not None else ():
        text = text.replace(secret, "***")
    return text


def check_no_secrets(job: PipJob, *texts: str) -> None:
    for secret in job.index.secrets():
        if any(secret in text for text in texts):
            raise ToolFailed(
                "the lock's output contains the pypi mirror's credentials; nothing was written",
                tip="report this as an envspec bug",
            )


def pip_file(explicit_file: Path) -> Path:
    """``lockfiles/<t>.lock`` -> ``lockfiles/<t>.pip.txt``."""
    return explicit_file.with_name(explicit_file.name.removesuffix(".lock") + PIP_SUFFIX)


def render_pip_txt(
    *, target: str, subdir: str, input_hash: str, index: PipIndex, packages: Sequence[PipPackage]
) -> str:
    """``<t>.pip.txt``: exact pins with their sha256, for ``pip install --no-deps --require-hashes``."""
    index_note = (
        "# Index: https://pypi.org/simple (pip's default).\n"
        if index.url == DEFAULT_INDEX
        else f"# Index: {_shown(index.url)} (the pypi mirror it was locked from; add --index-url URL for pip).\n"
    )
    lines = [
        f"# GENERATED by `envspec lock` (uv, on top of the conda part) from environment-{target}.yml — do not edit.\n",
        f"# To change it: edit envspec.yml, run `envspec render`, then `envspec lock --target {target}`.\n",
        f"# Target {target} ({subdir}): the PyPI packages installed after lockfiles/{target}.lock.\n",
        index_note,
        (
            f"# Install: conda create -n sd --file lockfiles/{target}.lock && conda run -n sd python -m pip install "
            f"--no-deps --require-hashes -r lockfiles/{target}.pip.txt\n"
        ),
        f"# {HASH_KEY}: {input_hash}\n",
    ]
    lines += [f"{p.name}=={p.version} --hash=sha256:{p.sha256}\n" for p in packages]
    return "".join(lines)


def stored_hash(path: Path) -> str | None:
    try:
        from envspec.fsutil import read_regular_text

        head = read_regular_text(path, 4096, errors="replace", head=True)
    except OSError:  # absent, or a FIFO/device (never hung on): no stored hash, so it is stale
        return None
    m = _HASH_LINE.search(head)
    return m.group(1) if m else None


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    sha256: str


def read_pins(text: str, source: str) -> list[Pin]:
    """The pins of a ``<t>.pip.txt`` (comments skipped); a line of another form is a SpecError."""
    pins = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _PIN_LINE.match(line)
        if not m:
            raise SpecError(
                f"{source}:{number}: not 'NAME==VERSION --hash=sha256:HEX': {line[:120]!r}",
                tip="re-create it with `envspec lock`, or restore it from git",
            )
        pins.append(Pin(_canonical(m.group("name")), m.group("version"), m.group("sha256")))
    return pins


def _shown(url: str) -> str:
    """The index URL as envspec may write or print it (``channels.redact``: the one redaction)."""
    from envspec.channels import redact as redact_secrets

    return redact_secrets(url)
