"""The report's inputs: smoke results (``read_results``, ``read_smoke_dir``) and lockfiles (``read_lock``).

Disk in, plain records out, never raising on bad input (a problem is a one-line text in the record)
and never hanging on it: results come from CI artifacts and other machines, so every file is a
regular file of a bounded size read inside its results folder (``read_capped``).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from envspec.errors import SpecError
from envspec.fsutil import NotRegularFile, read_regular_bytes, read_regular_text
from envspec.lock import SOLVED_FROM_KEY, TEST_CHANNEL, is_fresh, read_pip_packages
from envspec.lock import summarize_conda_lock as summarize
from envspec.project import Project
from envspec.smoke import SMOKE_IMAGE_FILE, SMOKE_REPORT_FILE, SMOKE_SCHEMA
from envspec.spec import ResolvedTarget

# One home for the file names and schema: the smoke test writes them (envspec.smoke.report).
SMOKE_JSON: Final = SMOKE_REPORT_FILE
SMOKE_PNG: Final = SMOKE_IMAGE_FILE
PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
#: A smoke.png larger than this is not embedded (the page must stay light).
MAX_EMBED_BYTES: Final = 8 * 1024 * 1024
#: A smoke.json larger than this is not parsed.
MAX_JSON_BYTES: Final = 4 * 1024 * 1024

LockState = Literal["fresh", "stale", "unknown", "missing"]
#: Shown beside the lock state of a lockfile solved against the tests' synthetic channel.
TEST_CHANNEL_TEXT = "solved against the tests' synthetic channel: never commit it"

# ---------------------------------------------------------------------------------------------
# smoke.json (schema envspec-smoke/1), read strictly where it matters, leniently for the rest
# ---------------------------------------------------------------------------------------------


class _Lenient(BaseModel):
    """Fields this report uses; later additions to the v1 format are ignored, not fatal."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class SmokeTimings(_Lenient):
    import_: float | None = Field(default=None, alias="import")
    load: float | None = None
    first_step: float | None = None
    median_step: float | None = None
    decode: float | None = None
    total: float | None = None


class SmokeImage(_Lenient):
    file: str | None = None
    width: int | None = None
    height: int | None = None
    mean: float | None = None
    std: float | None = None
    distinct_values: int | None = None


class SmokeCheck(_Lenient):
    name: str
    passed: bool
    detail: str | None = None


class SmokeMemory(_Lenient):
    peak_host_mib: float | None = None
    peak_device_mib: float | None = None


class SmokeBenchmark(_Lenient):
    it_per_s: float | None = None
    ms_per_step: float | None = None
    unet_gflop_per_step: float | None = None
    unet_tflops: float | None = None
    peak_tflops: float | None = None
    peak_share: float | None = None
    compiled: bool | None = None
    compile_s: float | None = None
    batch: int | None = None
    resolution: int | list[int] | None = None  # smoke writes the square side (512); accept [h, w] too
    dtype: str | None = None


class SmokeReport(_Lenient):
    schema_: Literal["envspec-smoke/1"] = Field(alias="schema")
    target: str | None = None  # null when the smoke test ran without --target
    verdict: Literal["pass", "fail", "error"]
    message: str = ""
    promised_device: str | None = None
    device: str | None = None
    device_name: str | None = None
    allow_cpu: bool = False
    dtype: str | None = None
    mode: str | None = None
    model: str | None = None
    resolution: list[int] | None = None
    steps: int | None = None
    seed: int | None = None
    versions: dict[str, str | None] = Field(default_factory=dict)
    timings_s: SmokeTimings = Field(default_factory=SmokeTimings)
    memory: SmokeMemory = Field(default_factory=SmokeMemory)
    image: SmokeImage | None = None
    checks: list[SmokeCheck] = Field(default_factory=list)
    benchmark: SmokeBenchmark | None = None


@dataclass(frozen=True)
class SmokeRead:
    """What one ``RESULTS_DIR/<target>/`` held: a parsed report or the reason it could not be read."""

    report: SmokeReport | None = None
    problem: str | None = None
    png: bytes | None = None
    png_problem: str | None = None


def parse_smoke_json(data: bytes) -> SmokeReport:
    """Parse smoke.json; raises ``ValueError`` with a one-line reason when it is not a v1 report."""
    import json

    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{SMOKE_JSON} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError(f"{SMOKE_JSON} nests too deeply to be a smoke report") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{SMOKE_JSON} is not a JSON object")
    schema = raw.get("schema")
    if schema != SMOKE_SCHEMA:
        raise ValueError(f"{SMOKE_JSON} has schema {schema!r}; this envspec reads {SMOKE_SCHEMA!r}")
    try:
        return SmokeReport.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ValueError(f"{SMOKE_JSON}: {where}: {first['msg']}") from None


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk; None when ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


class _Unreadable(Exception):
    """A result file that is not read: the one-line reason is the message."""


def read_capped(path: Path, cap: int, inside: Path) -> bytes:
    """The bytes of ``path``, a regular file of at most ``cap`` bytes whose real location is in ``inside``.

    Results come from CI artifacts and other machines: a FIFO would block a plain ``open`` forever,
    a symlink to ``/dev/zero`` never ends, a symlink out of the folder reads someone else's file.
    So the link is resolved and confined here, and the read is ``fsutil.read_regular_bytes``' (opened
    non-blocking, checked with ``fstat`` on the open descriptor, read to at most ``cap + 1`` bytes).
    Raises ``FileNotFoundError`` when there is no such file and ``_Unreadable`` (one line) for
    anything else.
    """
    name = path.name
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError:
        raise
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop on older Pythons
        raise _Unreadable(f"cannot read {name}: {getattr(exc, 'strerror', None) or exc}") from None
    if not real.is_relative_to(inside.resolve()):
        raise _Unreadable(f"{name} is a link to a file outside its results folder")
    try:
        return read_regular_bytes(real, cap)
    except FileNotFoundError:
        raise
    except NotRegularFile as exc:
        if exc.kind is not None:
            raise _Unreadable(f"{name} is not a regular file ({exc.kind})") from None
        raise _Unreadable(f"{name} is larger than {_mib(exc.cap if exc.cap is not None else cap)}") from None
    except OSError as exc:
        raise _Unreadable(f"cannot read {name}: {exc.strerror or exc}") from None


def _mib(cap: int) -> str:
    return f"{cap // (1024 * 1024)} MiB" if cap >= 1024 * 1024 else f"{cap} bytes"


def read_smoke_dir(folder: Path, inside: Path | None = None) -> SmokeRead:
    """Read ``folder/smoke.json`` and ``folder/smoke.png``, files that lie in ``inside`` (default:
    ``folder``). Never raises (nor hangs): problems become text."""
    inside = folder if inside is None else inside
    try:
        data = read_capped(folder / SMOKE_JSON, MAX_JSON_BYTES, inside)
    except FileNotFoundError:
        return SmokeRead(problem=f"no {SMOKE_JSON}")
    except _Unreadable as exc:
        return SmokeRead(problem=str(exc))
    try:
        report = parse_smoke_json(data)
    except ValueError as exc:
        return SmokeRead(problem=str(exc))
    png_name = report.image.file if report.image and report.image.file else SMOKE_PNG
    png, png_problem = _read_png(folder, png_name, inside)
    return SmokeRead(report=report, png=png, png_problem=png_problem)


def _read_png(folder: Path, name: str, inside: Path) -> tuple[bytes | None, str | None]:
    # The file name comes from the input: only a plain name inside the folder is followed.
    if Path(name).name != name or name in {"", ".", ".."}:
        return None, f"image file name {name!r} is not a plain file name"
    try:
        data = read_capped(folder / name, MAX_EMBED_BYTES, inside)
    except FileNotFoundError:
        return None, f"no {name}"
    except _Unreadable as exc:
        return None, str(exc)
    if png_size(data) is None:
        return None, f"{name} is not a PNG image"
    return data, None


def read_results(results_dir: Path) -> dict[str, SmokeRead]:
    """Every ``<name>/`` under ``results_dir`` that holds a smoke.json, keyed by folder name.

    A smoke.json directly in ``results_dir`` (what ``envspec smoke --out DIR`` writes for one
    target) counts too, keyed by the target it names.
    """
    found: dict[str, SmokeRead] = {}
    if os.path.lexists(results_dir / SMOKE_JSON):  # a FIFO or a link too: read_smoke_dir says why not
        single = read_smoke_dir(results_dir)
        found[(single.report.target if single.report else None) or results_dir.name] = single
    for folder in sorted(p for p in results_dir.iterdir() if p.is_dir()):
        if os.path.lexists(folder / SMOKE_JSON):
            found[folder.name] = read_smoke_dir(folder, results_dir)  # a folder linked out is not followed
    return found


# ---------------------------------------------------------------------------------------------
# lockfiles (conda-lock v1 YAML)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockReading:
    """What the report read of one target's lockfiles (never raises: a problem is a state)."""

    state: LockState
    packages: int | None = None
    torch_version: str | None = None
    torch_build: str | None = None
    problem: str | None = None
    pip_packages: tuple[str, ...] = ()  # "NAME VERSION" of the PyPI packages (envspec.lock.pypi)


def parse_conda_lock(text: str, subdir: str) -> tuple[int, str | None, str | None]:
    """(package count, torch version, torch build) of ``subdir`` in a conda-lock v1 file.

    Raises ``ValueError`` when the text is not a conda-lock v1 lockfile.
    """
    try:
        summary = summarize(text, "conda-lock file", subdir)  # the lock stage's own summary, too
    except SpecError as exc:
        raise ValueError(exc.message.removeprefix("conda-lock file: ")) from None
    torch = summary.torch
    return summary.packages, torch.version if torch else None, torch.build if torch else None


def read_lock(project: Project, target: ResolvedTarget, mirrors: Mapping[str, str] | None = None) -> LockReading:
    """Lock state of one target. Never raises: an unreadable lockfile is reported, not fatal.

    ``mirrors``: the mirrors the lockfiles were solved with (None: none; ``envspec report`` gives
    ``--mirror`` over ``ENVSPEC_MIRRORS``).
    """
    path = project.conda_lock_file(target.name)
    try:
        text = read_regular_text(path)  # a FIFO or /dev/zero in a checkout must not hang the report
    except FileNotFoundError:
        return LockReading(state="missing", problem=f"no {project.relative(path)}")
    except (OSError, UnicodeDecodeError) as exc:
        return LockReading(state="unknown", problem=f"cannot read {project.relative(path)}: {exc}")
    try:
        count, version, build = parse_conda_lock(text, target.subdir)
    except ValueError as exc:
        return LockReading(state="unknown", problem=f"{project.relative(path)}: {exc}")
    state, problem = _freshness(project, target, mirrors)
    if f"# {SOLVED_FROM_KEY}: {TEST_CHANNEL}" in text:  # the lock step's mark: fresh, but never to commit
        problem = f"{problem}; {TEST_CHANNEL_TEXT}" if problem else TEST_CHANNEL_TEXT
    pip = tuple(f"{p.name} {p.version}" for p in read_pip_packages(text, "conda-lock file", target.subdir))
    return LockReading(
        state=state, packages=count, torch_version=version, torch_build=build, problem=problem, pip_packages=pip
    )


def _freshness(
    project: Project, target: ResolvedTarget, mirrors: Mapping[str, str] | None = None
) -> tuple[LockState, str | None]:
    """Ask the lock stage whether the lockfiles match their inputs (``is_fresh``: None when it cannot tell)."""
    try:
        fresh = is_fresh(project, target) if mirrors is None else is_fresh(project, target, mirrors)
    except Exception as exc:  # a report shows what it can; the lock step's own command reports errors
        return "unknown", f"freshness check failed: {' '.join(str(exc).split())[:200]}"
    if fresh is None:
        return "unknown", None
    return ("fresh" if fresh else "stale"), None
