"""PyPI packages beside the conda packages of a target: index, name mapping, ``<t>.pip.txt``.

conda-lock solves the ``pip:`` section of an environment file itself (its vendored Poetry
solver), against the conda solution of the same platform: the target's python decides the wheel
tags, its virtual packages the manylinux level, and every conda package that depends on python
counts as an installed PyPI distribution (``pytorch`` provides ``torch``, ``pillow`` provides
``pillow``), so a pip requirement a conda package already satisfies is never installed twice.
envspec only feeds it what it needs to run offline and reproducibly:

* the **index**: ``https://pypi.org/simple``, or the ``pypi`` mirror (``--mirror pypi=URL`` /
  ``ENVSPEC_MIRRORS``). It goes into a temporary copy of the environment file as conda-lock's
  ``pip-repositories`` (with ``allow-pypi-requests: false``, so pypi.org's JSON API is never asked
  behind the mirror's back). Credentials never touch a file: the copy names ``$ENVSPEC_PYPI_USERNAME``
  and ``$ENVSPEC_PYPI_PASSWORD``, which conda-lock expands from the child's environment, and
  ``--strip-auth`` keeps them out of its output (envspec checks that they stayed out);
* the **PyPI <-> conda name mapping**: ``--pypi_to_conda_lookup_file`` with the small mapping
  shipped beside this module (``pypi_mapping.json``; refresh with ``nox -s pypi_mapping``), never
  the download from GitHub;

and it checks the result: every pip package needs a sha256, and a source distribution is refused
unless ``pip_allow_sdist`` names it. The locked packages are also written as
``lockfiles/<t>.pip.txt`` (``name==version --hash=sha256:...``), the file plain pip installs with
``--no-deps --require-hashes``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from envspec.errors import ChannelUnreachable, EnvspecError, SpecError, ToolFailed, UnsatisfiableError
from envspec.lock.condalock import PipPackage, read_conda_lock, read_pip_packages

DEFAULT_INDEX: Final = "https://pypi.org/simple"
MIRROR_NAME: Final = "pypi"
MAPPING_FILE: Final = Path(__file__).with_name("pypi_mapping.json")
USERNAME_ENV: Final = "ENVSPEC_PYPI_USERNAME"
PASSWORD_ENV: Final = "ENVSPEC_PYPI_PASSWORD"
PIP_SUFFIX: Final = ".pip.txt"
HASH_KEY: Final = "envspec-input-hash"
_SDIST_SUFFIXES: Final = (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
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

    def conda_lock_url(self) -> str:
        """The URL written into conda-lock's ``pip-repositories``: credentials as variables only."""
        if not self.has_credentials:
            return self.url
        parts = urlsplit(self.url)
        auth = f"${USERNAME_ENV}" + (f":${PASSWORD_ENV}" if self.password is not None else "")
        return urlunsplit(parts._replace(netloc=f"{auth}@{parts.netloc}"))

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
# The conda-lock run
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PipJob:
    """What locking a target's pip packages needs beyond its conda part."""

    requirements: tuple[str, ...]
    allow_sdist: frozenset[str]
    index: PipIndex
    conda_names: frozenset[str] = frozenset()  # the conda packages the spec names for the target

    def split(self) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
        """(requirements for conda-lock's PyPI solver, (requirement, conda name) pairs the spec's
        conda packages provide). The latter never reach the PyPI solver: it would fetch the PyPI
        release's metadata (torch's pulls in nvidia-* wheels) instead of trusting the conda package;
        envspec checks them against the conda solution instead."""
        mapping = conda_names_of_pypi()
        to_pip: list[str] = []
        provided: list[tuple[str, str]] = []
        for req in self.requirements:
            name = requirement_name(req)
            conda = mapping.get(name, name)
            if conda in self.conda_names:
                provided.append((req, conda))
            else:
                to_pip.append(req)
        return tuple(to_pip), tuple(provided)


def hash_components(job: PipJob | None) -> tuple[tuple[str, str], ...]:
    """What a pip target's lock depends on beyond its files: the index (no credentials) and the mapping."""
    if job is None:
        return ()
    return (("index", job.index.url), ("pypi_mapping", mapping_digest()))


def requested(job: PipJob | None) -> frozenset[str]:
    """The PyPI names a target asks for directly (what ``--update`` may name)."""
    return requested_names(job.requirements) if job is not None else frozenset()


def make_pip_job(target: Any, mirrors: Mapping[str, str]) -> PipJob | None:
    """The pip part of a target (``ResolvedTarget.pip``), None when it has none."""
    requirements = tuple(getattr(target, "pip", ()) or ())
    if not requirements:
        return None
    allow = frozenset(_canonical(n) for n in getattr(target, "pip_allow_sdist", ()) or ())
    conda = frozenset(_conda_spec_name(d) for d in getattr(target, "dependencies", ()))
    return PipJob(requirements, allow, pip_index(mirrors), conda)


def _conda_spec_name(match_spec: str) -> str:
    text = match_spec.strip().split("::", 1)[-1]
    return re.split(r"[\s=<>!~\[;]", text, maxsplit=1)[0].lower()


def requirement_name(requirement: str) -> str:
    from packaging.requirements import Requirement

    return _canonical(Requirement(requirement).name)


def conda_names_of_pypi() -> dict[str, str]:
    """The shipped mapping as {PyPI name: conda name} (``torch`` -> ``pytorch``)."""
    import json

    data = json.loads(MAPPING_FILE.read_text(encoding="utf-8"))
    return {_canonical(k): str(v.get("conda_name") or k) for k, v in data.items() if isinstance(v, dict)}


def requested_names(requirements: Sequence[str]) -> frozenset[str]:
    from packaging.requirements import Requirement

    return frozenset(_canonical(Requirement(r).name) for r in requirements)


def _canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def lock_environment_text(env_text: str, index: PipIndex, pip_requirements: Sequence[str] | None = None) -> str:
    """The environment file conda-lock reads for a pip target: the rendered one plus its index,
    and (when given) only ``pip_requirements`` in its ``pip:`` section."""
    import json

    import yaml

    data = yaml.safe_load(env_text)
    if pip_requirements is not None and isinstance(data, dict):
        deps = []
        for dep in data.get("dependencies") or []:
            if isinstance(dep, dict) and "pip" in dep:
                if pip_requirements:
                    deps.append({**dep, "pip": list(pip_requirements)})
            else:
                deps.append(dep)
        data["dependencies"] = deps
    data["pip-repositories"] = [index.conda_lock_url()]
    data["allow-pypi-requests"] = False
    return (
        "# written by `envspec lock` for conda-lock's PyPI solver from the rendered environment file\n"
        + json.dumps(data, indent=1, ensure_ascii=False)
        + "\n"
    )


def lock_env_path(env_file: Path, pid: int) -> Path:
    """Where that file is written: beside the real one (same relative paths in conda-lock's metadata)."""
    return env_file.with_name(f".{env_file.name}.envspec-tmp-{pid}.yml")


def prepare(
    job: PipJob, *, env_file: Path, env_bytes: bytes, argv: list[str], env: dict[str, str], scratch: Path
) -> Path:
    """Write the environment file conda-lock reads and add the pip flags and variables (in place)."""
    import os

    path = lock_env_path(env_file, os.getpid())
    to_pip, _ = job.split()
    path.write_text(lock_environment_text(env_bytes.decode("utf-8"), job.index, to_pip), encoding="utf-8")
    argv += conda_lock_argv(job)
    env.update(conda_lock_env(job, scratch))
    return path


def conda_lock_argv(job: PipJob) -> list[str]:
    argv = ["--pypi_to_conda_lookup_file", str(MAPPING_FILE)]
    if job.index.has_credentials:
        argv.append("--strip-auth")
    return argv


def conda_lock_env(job: PipJob, scratch: Path) -> dict[str, str]:
    """The child's additions: credentials (as variables) and a per-run Poetry cache."""
    return {
        **job.index.child_env(),
        "POETRY_CACHE_DIR": str(scratch / "poetry-cache"),
        # Poetry asks the system keyring for index credentials: never (it can block, or find others')
        "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
    }


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


#: PyPI torch's own CUDA runtime, which a pip package depending on torch drags in; conda's pytorch
#: brings its CUDA libraries as conda packages, so these would be a second copy (gigabytes).
TORCH_RUNTIME_WHEELS: Final = ("nvidia-", "triton")


def check_not_twice(target: str, packages: Sequence[PipPackage], conda_names: frozenset[str]) -> None:
    """No PyPI package may install what a conda package of the solution already is (pure)."""
    to_conda = conda_names_of_pypi()
    twice = sorted(p.name for p in packages if to_conda.get(p.name, p.name) in conda_names)
    if "pytorch" in conda_names:
        twice += sorted(p.name for p in packages if p.name.startswith(TORCH_RUNTIME_WHEELS) and p.name not in twice)
    if twice:
        raise UnsatisfiableError(
            f"target {target}: the pip solution would install {', '.join(twice)} from PyPI beside the conda "
            "packages that already provide them (torch and its CUDA runtime come from conda-forge here)",
            tip="a pip package depends on them by their PyPI names: pin a version of it that does not, "
            "or take that package from conda-forge instead",
        )


def finish(job: PipJob, *, target: str, subdir: str, input_hash: str, lock_text: str, explicit_text: str) -> str:
    """Check conda-lock's pip result and render ``<t>.pip.txt`` (raises EnvspecError)."""
    check_no_secrets(job, lock_text, explicit_text)
    packages = read_pip_packages(lock_text, "conda-lock output", subdir)
    check_locked(target, packages, job)
    check_provided(target, subdir, job, lock_text)
    conda = frozenset(p.name for p in read_conda_lock(lock_text, "conda-lock output", subdir))
    check_not_twice(target, packages, conda)
    pip_lines = [line for line in explicit_text.splitlines() if line.startswith("# pip ")]
    if len(pip_lines) != len(packages):
        raise ToolFailed(
            f"{target}: conda-lock.yml has {len(packages)} pip packages but the explicit file {len(pip_lines)}"
        )
    return render_pip_txt(target=target, subdir=subdir, input_hash=input_hash, index=job.index, packages=packages)


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


def classify_failure(target: str, subdir: str, job: PipJob, output: str) -> EnvspecError | None:
    """A failed conda-lock run that failed in its PyPI part, as envspec's error; else None."""
    why = conflict_message(output)
    if why is not None:
        return UnsatisfiableError(
            f"target {target} ({subdir}): its pip requirements cannot be met on top of its conda packages: {why}",
            tip=f"relax the pip requirement (pip: or targets.{target}.pip in envspec.yml), or the conda package it "
            "meets, then `envspec render` and `envspec lock`",
        )
    if re.search(
        r"ConnectionError|Max retries exceeded|Failed to establish a new connection|Name or service not known"
        r"|Connection refused|RepositoryError|HTTPError|404 Client Error|SSLError",
        output,
    ):
        return ChannelUnreachable(
            f"PyPI index {job.index.url} is unreachable while locking {target}: {_last_error_line(output)}",
            tip=f"check the network/URL, or map it to a reachable index: --mirror {MIRROR_NAME}=URL "
            f"(or ENVSPEC_MIRRORS={MIRROR_NAME}=URL), e.g. {MIRROR_NAME}=https://mirror.example/pypi/simple",
        )
    return None


def _last_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if re.search(r"Error|error|refused|failed", line)]
    return redact_urls(lines[-1])[:300] if lines else "no response"


def redact_urls(text: str) -> str:
    from envspec.channels import redact as redact_secrets

    return redact_secrets(text)


def _shown(url: str) -> str:
    from envspec.channels import redact as redact_secrets

    return redact_secrets(url)


def check_provided(target: str, subdir: str, job: PipJob, lock_text: str) -> None:
    """The pip requirements a conda package provides must be met by the version conda solved."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.version import InvalidVersion, Version

    from envspec.lock.condalock import read_conda_lock

    _, provided = job.split()
    if not provided:
        return
    solved = {p.name: p.version for p in read_conda_lock(lock_text, "conda-lock output", subdir)}
    python = solved.get("python", "3")
    family = subdir.split("-", maxsplit=1)[0]
    env: dict[str, str] = {
        **{k: str(v) for k, v in default_environment().items()},
        "sys_platform": {"linux": "linux", "osx": "darwin", "win": "win32"}.get(family, family),
        "platform_system": {"linux": "Linux", "osx": "Darwin", "win": "Windows"}.get(family, family),
        "os_name": "nt" if family == "win" else "posix",
        "python_version": ".".join(python.split(".")[:2]),
        "python_full_version": python,
    }
    for text, conda in provided:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        version = solved.get(conda)
        if version is None:
            raise UnsatisfiableError(
                f"target {target}: pip requirement {text!r} is provided by conda package {conda}, "
                "which the conda solution does not contain",
                tip="check the spec's conda packages for this target",
            )
        try:
            ok = req.specifier.contains(Version(version), prereleases=True)
        except InvalidVersion:
            ok = True  # a conda-only version scheme: the conda spec is authoritative
        if not ok:
            raise UnsatisfiableError(
                f"target {target} ({subdir}): its pip requirements cannot be met on top of its conda packages: "
                f"{text!r} is provided by conda package {conda} {version}, which does not satisfy it",
                tip=f"relax the pip requirement, or pin {conda} in the spec's conda packages to match it",
            )


def check_no_secrets(job: PipJob, *texts: str) -> None:
    for secret in job.index.secrets():
        if any(secret in text for text in texts):
            raise ToolFailed(
                "conda-lock's output contains the pypi mirror's credentials; nothing was written",
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
        f"# GENERATED by `envspec lock` (conda-lock) from environment-{target}.yml — do not edit.\n",
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


def conflict_message(output: str) -> str | None:
    """Poetry's version-solving failure in conda-lock's output as one line, or None."""
    if "version solving failed" not in output and "SolverProblemError" not in output:
        return None
    lines = [" ".join(line.split()) for line in output.splitlines()]
    lines = [line.removeprefix("conda_lock._vendor.poetry.puzzle.exceptions.SolverProblemError: ") for line in lines]
    picked = [line for line in lines if line.startswith(("Because", "And because", "and ", "So,", "Thus,"))]
    text = " ".join(picked) if picked else next((line for line in lines if "version solving failed" in line), "")
    text = text.replace("_dummy_package_", "the spec")
    return text or "pip requirements conflict with the conda packages"
