"""ResultTable: smoke results + lockfiles of every target -> one table model -> ``report.html`` and ``report.md``.

Three layers, one way: *reading* (``read_smoke_dir``, ``read_lock``: disk in, plain records out,
never raising on bad input), *planning* (``build_table``: pure, the table model the tests check),
*rendering* (``render_html``, ``render_markdown``: text out, every input string escaped). Only
``write_report`` touches the output folder, atomically.
"""

from __future__ import annotations

import base64
import html
import io
import os
import stat
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from envspec.errors import SpecError
from envspec.fsutil import atomic_write_text
from envspec.lock import SOLVED_FROM_KEY, TEST_CHANNEL, is_fresh, read_pip_packages, torch_build_label
from envspec.lock import summarize_conda_lock as summarize
from envspec.project import Project
from envspec.render import REPORT_ARTIFACT, artifact_name
from envspec.smoke import SMOKE_IMAGE_FILE, SMOKE_REPORT_FILE, SMOKE_SCHEMA
from envspec.spec import ResolvedTarget

# One home for the file names and schema: the smoke test writes them (envspec.smoke.report).
SMOKE_JSON: Final = SMOKE_REPORT_FILE
SMOKE_PNG: Final = SMOKE_IMAGE_FILE
PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
#: Thumbnails are at most this many pixels on their longer side (when Pillow is there to shrink them).
THUMBNAIL_PX: Final = 256
#: A smoke.png larger than this is not embedded (the page must stay light).
MAX_EMBED_BYTES: Final = 8 * 1024 * 1024
#: A smoke.json larger than this is not parsed.
MAX_JSON_BYTES: Final = 4 * 1024 * 1024
#: A smoke.png with more pixels than this is not decoded nor embedded (a small file can inflate to
#: gigabytes: a decompression bomb for Pillow and for the browser showing the report).
MAX_DECODE_PIXELS: Final = 4096 * 4096
#: GitHub stops a job summary at 1 MiB: report.md stays below it, whatever the inputs say.
MARKDOWN_MAX_BYTES: Final = 1000 * 1000
#: The longest text a markdown cell shows (reasons and names come from other machines' files).
MD_CELL_MAX_CHARS: Final = 2000

Status = Literal["pass", "fail", "error", "missing"]
LockState = Literal["fresh", "stale", "unknown", "missing"]
#: Shown beside the lock state of a lockfile solved against the tests' synthetic channel.
TEST_CHANNEL_TEXT = "solved against the tests' synthetic channel: never commit it"
DeviceVerdict = Literal["promised", "allowed-cpu", "wrong", "unknown"]

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
    So the file is opened non-blocking, checked with ``fstat`` on the open descriptor (no race with
    a swap after a ``stat``), and read to at most ``cap + 1`` bytes. Raises ``FileNotFoundError``
    when there is no such file and ``_Unreadable`` (one line) for anything else.
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
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _Unreadable(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Unreadable(f"{name} is not a regular file ({_file_kind(info.st_mode)})")
        chunks: list[bytes] = []
        size = 0
        while size <= cap:
            chunk = os.read(fd, min(1 << 20, cap + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise _Unreadable(f"cannot read {name}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if size > cap:
        raise _Unreadable(f"{name} is larger than {_mib(cap)}")
    return b"".join(chunks)


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return kind
    return "not a plain file"


def _mib(cap: int) -> str:
    return f"{cap // (1024 * 1024)} MiB" if cap >= 1024 * 1024 else f"{cap} bytes"


def read_smoke_dir(folder: Path) -> SmokeRead:
    """Read ``folder/smoke.json`` and ``folder/smoke.png``. Never raises (nor hangs): problems become text."""
    try:
        data = read_capped(folder / SMOKE_JSON, MAX_JSON_BYTES, folder)
    except FileNotFoundError:
        return SmokeRead(problem=f"no {SMOKE_JSON}")
    except _Unreadable as exc:
        return SmokeRead(problem=str(exc))
    try:
        report = parse_smoke_json(data)
    except ValueError as exc:
        return SmokeRead(problem=str(exc))
    png_name = report.image.file if report.image and report.image.file else SMOKE_PNG
    png, png_problem = _read_png(folder, png_name)
    return SmokeRead(report=report, png=png, png_problem=png_problem)


def _read_png(folder: Path, name: str) -> tuple[bytes | None, str | None]:
    # The file name comes from the input: only a plain name inside the folder is followed.
    if Path(name).name != name or name in {"", ".", ".."}:
        return None, f"image file name {name!r} is not a plain file name"
    try:
        data = read_capped(folder / name, MAX_EMBED_BYTES, folder)
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
            found[folder.name] = read_smoke_dir(folder)
    return found


# ---------------------------------------------------------------------------------------------
# lockfiles (conda-lock v1 YAML)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockSummary:
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


def read_lock(project: Project, target: ResolvedTarget, mirrors: Mapping[str, str] | None = None) -> LockSummary:
    """Lock state of one target. Never raises: an unreadable lockfile is reported, not fatal.

    ``mirrors``: the channel mirrors the lockfiles were solved with (default: ``ENVSPEC_MIRRORS``).
    """
    path = project.conda_lock_file(target.name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return LockSummary(state="missing", problem=f"no {project.relative(path)}")
    except (OSError, UnicodeDecodeError) as exc:
        return LockSummary(state="unknown", problem=f"cannot read {project.relative(path)}: {exc}")
    try:
        count, version, build = parse_conda_lock(text, target.subdir)
    except ValueError as exc:
        return LockSummary(state="unknown", problem=f"{project.relative(path)}: {exc}")
    state, problem = _freshness(project, target, mirrors)
    if f"# {SOLVED_FROM_KEY}: {TEST_CHANNEL}" in text:  # the lock step's mark: fresh, but never to commit
        problem = f"{problem}; {TEST_CHANNEL_TEXT}" if problem else TEST_CHANNEL_TEXT
    pip = tuple(f"{p.name} {p.version}" for p in read_pip_packages(text, "conda-lock file", target.subdir))
    return LockSummary(
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


# ---------------------------------------------------------------------------------------------
# the table model (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageCell:
    png: bytes
    width: int
    height: int
    stats: str


@dataclass(frozen=True)
class CheckCell:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Row:
    target: str
    in_spec: bool
    runner: str
    subdir: str
    promised_device: str
    status: Status
    reason: str
    device: str | None
    device_name: str | None
    device_verdict: DeviceVerdict
    dtype: str | None
    mode: str | None
    model_note: str | None  # which model made the image: the pinned one, or the tiny offline one
    model_path: str | None  # where that model was loaded from (smoke.json's "model")
    lock: LockSummary
    timings: tuple[tuple[str, float], ...]
    it_per_s: float | None
    benchmark: str | None
    checks: tuple[CheckCell, ...]
    versions: tuple[tuple[str, str], ...]
    image: ImageCell | None
    image_note: str

    @property
    def failed_checks(self) -> tuple[CheckCell, ...]:
        return tuple(c for c in self.checks if not c.passed)

    @property
    def torch(self) -> str:
        if self.lock.torch_version is None:
            return ""
        if not self.lock.torch_build:
            return self.lock.torch_version
        return f"{self.lock.torch_version} ({torch_build_label(self.lock.torch_build, self.subdir)})"


@dataclass(frozen=True)
class ResultTable:
    rows: tuple[Row, ...]
    context: tuple[tuple[str, str], ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    #: The heading of both files: where the report was made (``report_title``).
    title: str = "envspec report"

    @property
    def headline(self) -> str:
        total = len(self.rows)
        parts = [f"{self.counts.get(s, 0)} {s}" for s in ("pass", "fail", "error", "missing") if self.counts.get(s)]
        return f"{self.counts.get('pass', 0)}/{total} targets passed" + (f" ({', '.join(parts)})" if parts else "")


#: The promised device of a result whose target is not in the spec and whose smoke.json names none.
UNKNOWN_PROMISE: Final = "?"

TIMING_LABELS: Final = (
    ("import_", "import"),
    ("load", "load"),
    ("first_step", "first step"),
    ("median_step", "median step"),
    ("decode", "decode"),
    ("total", "total"),
)


def _device_verdict(promised: str, report: SmokeReport) -> DeviceVerdict:
    if not report.device or promised == UNKNOWN_PROMISE:
        return "unknown"
    if report.device == promised:
        return "promised"
    if report.device == "cpu" and report.allow_cpu:
        return "allowed-cpu"
    return "wrong"


def judge(promised: str, report: SmokeReport, device_verdict: DeviceVerdict) -> tuple[Status, str]:
    """The row's status from the evidence, not from the ``verdict`` smoke.json claims. Pure.

    Pass only if smoke.json says pass, it recorded checks and every one passed, and it ran on the
    promised device (or on the CPU with the promise waived by ``--allow-cpu``, as recorded in it).
    An ``error`` stays an error (the smoke test did not get to its checks). A verdict the evidence
    contradicts is a fail whose reason says so.
    """
    if report.verdict == "error":
        return "error", report.message
    failed = [c.name for c in report.checks if not c.passed]
    against: list[str] = []
    if failed:
        against.append(f"check{'s' if len(failed) > 1 else ''} {', '.join(failed)} failed")
    elif not report.checks:
        against.append("it recorded no checks")
    if promised != UNKNOWN_PROMISE and device_verdict == "wrong":
        against.append(f"it ran on {report.device} where {promised} was promised and not waived by --allow-cpu")
    elif promised != UNKNOWN_PROMISE and device_verdict == "unknown":
        against.append("it does not say which device it ran on")
    if report.verdict == "pass":
        if not against:
            return "pass", report.message
        return "fail", f"smoke.json says pass, but {'; '.join(against)}"
    if not against:  # "fail" although the evidence is clean: trust the failure, say it disagrees
        note = "smoke.json says fail, although every recorded check passed on the promised device"
        return "fail", f"{report.message} ({note})" if report.message else note
    return "fail", report.message


def _benchmark_text(b: SmokeBenchmark) -> str | None:
    bits: list[str] = []
    if b.ms_per_step is not None:
        bits.append(f"{b.ms_per_step:.1f} ms/step")
    if b.unet_tflops is not None:
        share = f", {b.peak_share:.0%} of peak" if b.peak_share is not None else ""
        bits.append(f"UNet {b.unet_tflops:.1f} TFLOP/s{share}")
    if b.compiled is not None:
        bits.append(
            "compiled" + (f" in {b.compile_s:.0f} s" if b.compile_s is not None else "") if b.compiled else "eager"
        )
    if b.resolution and b.batch is not None:
        side = [b.resolution, b.resolution] if isinstance(b.resolution, int) else b.resolution
        bits.append(f"{'×'.join(str(v) for v in side)} batch {b.batch}" + (f" {b.dtype}" if b.dtype else ""))
    return ", ".join(bits) or None


def _image_cell(read: SmokeRead, report: SmokeReport) -> tuple[ImageCell | None, str]:
    if read.png is None:
        return None, read.png_problem or f"no {SMOKE_PNG}"
    size = png_size(read.png)
    if size is None:  # read_smoke_dir only keeps PNGs; guard for hand-made SmokeRead values
        return None, f"{SMOKE_PNG} is not a PNG image"
    if size[0] * size[1] > MAX_DECODE_PIXELS:
        return None, (
            f"{SMOKE_PNG} is {size[0]}x{size[1]} pixels, more than the {MAX_DECODE_PIXELS} the report decodes; "
            "not shown"
        )
    stats = ""
    img = report.image
    if img is not None and img.std is not None:
        distinct = f", {img.distinct_values} values" if img.distinct_values is not None else ""
        stats = f"mean {img.mean if img.mean is not None else float('nan'):.1f}, std {img.std:.1f}{distinct}"
    return ImageCell(png=read.png, width=size[0], height=size[1], stats=stats), ""


def _resultless_row(
    name: str, target: ResolvedTarget | None, lock: LockSummary, *, status: Status, reason: str, promised: str
) -> Row:
    """A row for a target whose smoke results are missing or unreadable: shown, never dropped."""
    return Row(
        target=name,
        in_spec=target is not None,
        runner=target.runner if target else "",
        subdir=target.subdir if target else "",
        promised_device=promised,
        status=status,
        reason=reason,
        device=None,
        device_name=None,
        device_verdict="unknown",
        dtype=None,
        mode=None,
        model_note=None,
        model_path=None,
        lock=lock,
        timings=(),
        it_per_s=None,
        benchmark=None,
        checks=(),
        versions=(),
        image=None,
        image_note="no image",
    )


def build_row(
    name: str,
    target: ResolvedTarget | None,
    read: SmokeRead | None,
    lock: LockSummary,
) -> Row:
    """One row of the matrix. Pure."""
    runner = target.runner if target else ""
    subdir = target.subdir if target else ""
    if read is None:
        assert target is not None
        reason = "no smoke results (the job failed before the smoke test, or did not run)"
        return _resultless_row(name, target, lock, status="missing", reason=reason, promised=target.smoke_device)
    report = read.report
    promised = target.smoke_device if target else (report.promised_device if report else None) or UNKNOWN_PROMISE
    if report is None:
        return _resultless_row(
            name, target, lock, status="error", reason=read.problem or "unreadable results", promised=promised
        )
    device_verdict = _device_verdict(promised, report)
    status, reason = judge(promised, report, device_verdict)
    if report.target is not None and report.target != name:
        status, reason = "error", f"{SMOKE_JSON} is for target {report.target!r} but was found under {name!r}"
    timings = tuple(
        (label, value) for attr, label in TIMING_LABELS if (value := getattr(report.timings_s, attr)) is not None
    )
    image, image_note = _image_cell(read, report)
    bench = report.benchmark
    return Row(
        target=name,
        in_spec=target is not None,
        runner=runner,
        subdir=subdir,
        promised_device=promised,
        status=status,
        reason=reason,
        device=report.device,
        device_name=report.device_name,
        device_verdict=device_verdict,
        dtype=report.dtype,
        mode=report.mode,
        model_note=model_note(report.mode, report.model),
        model_path=report.model,
        lock=lock,
        timings=timings,
        it_per_s=bench.it_per_s if bench else None,
        benchmark=_benchmark_text(bench) if bench else None,
        checks=tuple(CheckCell(c.name, c.passed, c.detail or "") for c in report.checks),
        versions=tuple((k, v) for k, v in report.versions.items() if v),
        image=image,
        image_note=image_note,
    )


def model_note(mode: str | None, model: str | None) -> str | None:
    """Which model the smoke image came from, for people: a real image or the offline stand-in."""
    if mode == "tiny":
        return "tiny offline model (random weights: a shape test, not a real picture)"
    if mode == "model" and model:
        return f"model {Path(model).name}"
    if mode == "benchmark":
        return model or "benchmark"
    return None


def build_table(
    targets: Iterable[ResolvedTarget],
    results: Mapping[str, SmokeRead],
    locks: Mapping[str, LockSummary],
    context: Iterable[tuple[str, str]] = (),
    title: str = "envspec report",
) -> ResultTable:
    """The table model: one row per target of the spec (missing ones included), in spec order,
    then rows for results of targets the spec does not have. Pure."""
    targets = list(targets)
    rows = [build_row(t.name, t, results.get(t.name), locks.get(t.name, LockSummary(state="unknown"))) for t in targets]
    known = {t.name for t in targets}
    rows.extend(
        build_row(name, None, read, LockSummary(state="unknown", problem="not a target of the spec"))
        for name, read in sorted(results.items())
        if name not in known
    )
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return ResultTable(rows=tuple(rows), context=tuple(context), counts=counts, title=title)


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------

DEVICE_TEXT: Final[dict[DeviceVerdict, str]] = {
    "promised": "the promised device",
    "allowed-cpu": "promise waived: CPU allowed by --allow-cpu (e.g. a hosted runner)",
    "wrong": "NOT the promised device",
    "unknown": "",
}


def thumbnail(png: bytes, max_px: int = THUMBNAIL_PX) -> tuple[bytes, int, int]:
    """A PNG no larger than ``max_px`` on its longer side (Pillow shrinks it when installed;
    without Pillow the original is embedded and the browser scales it)."""
    size = png_size(png)
    if size is None:
        raise ValueError("not a PNG")
    width, height = size
    if max(width, height) <= max_px:
        return png, width, height
    scale = max_px / max(width, height)
    shown = (max(1, round(width * scale)), max(1, round(height * scale)))
    try:
        from PIL import Image
    except ImportError:
        return png, *shown
    try:
        with Image.open(io.BytesIO(png)) as img:
            img.load()
            small = img.convert("RGBA" if "A" in img.getbands() else "RGB").resize(shown, Image.Resampling.LANCZOS)
            out = io.BytesIO()
            small.save(out, format="PNG", optimize=True)
            return out.getvalue(), *shown
    except Exception:  # a damaged PNG is still embedded as it came; the browser decides
        return png, *shown


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def render_html(report: ResultTable) -> str:
    """Self-contained HTML: inline CSS, images as data URIs, no scripts, no external requests."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "assets")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["seconds"] = _seconds
    thumbs: dict[str, tuple[str, int, int]] = {}
    for row in report.rows:
        if row.image is not None:
            data, width, height = thumbnail(row.image.png)
            thumbs[row.target] = (data_uri(data), width, height)
    return env.get_template("report.html.j2").render(report=report, thumbs=thumbs, device_text=DEVICE_TEXT)


def md_cell(value: object) -> str:
    """Text safe inside a GitHub markdown table cell: HTML-escaped, pipes and markup neutralised."""
    text = " ".join(str(value).split())
    if len(text) > MD_CELL_MAX_CHARS:
        text = text[: MD_CELL_MAX_CHARS - 1] + "…"
    text = html.escape(text, quote=False)
    for char in ("\\", "|", "`", "*", "_", "[", "]"):
        text = text.replace(char, "\\" + char)
    return text


STATUS_MD: Final[dict[str, str]] = {"pass": "✅ pass", "fail": "❌ fail", "error": "⚠️ error", "missing": "⬜ missing"}


def render_markdown(report: ResultTable, image_hint: str = "") -> str:
    """GitHub job-summary markdown. Images cannot be embedded there; ``image_hint`` (trusted markdown
    written by envspec) says where they are."""
    lines = [f"## {md_cell(report.title)}", "", md_cell(report.headline), ""]
    if report.context:
        lines += [" · ".join(f"{md_cell(k)}: {md_cell(v)}" for k, v in report.context), ""]
    lines += [
        "| target | result | device used / promised | lock | packages | torch | timings | it/s |",
        "| --- | --- | --- | --- | ---: | --- | --- | ---: |",
    ]
    for row in report.rows:
        target = f"**{md_cell(row.target)}**" + (f"<br>{md_cell(row.runner)}" if row.runner else "")
        if not row.in_spec:
            target += "<br>not in envspec.yml"
        result = STATUS_MD[row.status] + (f"<br>{md_cell(row.reason)}" if row.reason else "")
        if row.failed_checks:
            result += "<br>failed: " + ", ".join(md_cell(c.name) for c in row.failed_checks)
        if row.model_note:
            result += f"<br>{md_cell(row.model_note)}"
        device = f"{md_cell(row.device or '—')} / {md_cell(row.promised_device)}"
        if row.device_verdict != "unknown":
            device += f"<br>{md_cell(DEVICE_TEXT[row.device_verdict])}"
        lock = md_cell(row.lock.state)
        if row.lock.problem and TEST_CHANNEL_TEXT in row.lock.problem:
            lock += f"<br>{md_cell(TEST_CHANNEL_TEXT)}"
        timings = ", ".join(f"{md_cell(label)} {_seconds(v)}" for label, v in row.timings) or "—"
        speed = f"{row.it_per_s:.1f}" if row.it_per_s is not None else "—"
        packages = str(row.lock.packages) if row.lock.packages is not None else "—"
        if row.lock.pip_packages:
            packages += f" + {len(row.lock.pip_packages)} PyPI: {md_cell(', '.join(row.lock.pip_packages))}"
        cells = [target, result, device, lock, packages, md_cell(row.torch) or "—", timings, speed]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if image_hint:  # envspec's own markdown, not input text
        lines += [image_hint, ""]
    return _capped_markdown(lines, len(report.rows))


def _capped_markdown(lines: list[str], rows: int) -> str:
    """``lines`` joined, rows dropped from the end of the table until it fits MARKDOWN_MAX_BYTES."""
    text = "\n".join(lines)
    if len(text.encode("utf-8")) <= MARKDOWN_MAX_BYTES:
        return text
    table_start = next(i for i, line in enumerate(lines) if line.startswith("| ---")) + 1
    head, table = lines[:table_start], lines[table_start : table_start + rows]
    budget = MARKDOWN_MAX_BYTES - len("\n".join(head).encode("utf-8")) - 400
    kept: list[str] = []
    for line in table:
        budget -= len(line.encode("utf-8")) + 1
        if budget < 0:
            break
        kept.append(line)
    note = (
        f"{rows - len(kept)} of {rows} targets are not shown: a GitHub job summary stops at 1 MiB; "
        "report.html has them all."
    )
    return "\n".join([*head, *kept, "", note, ""])


@dataclass(frozen=True)
class Written:
    html: Path
    markdown: Path


def write_report(report: ResultTable, out_dir: Path, image_hint: str = "") -> Written:
    """Write ``report.html`` and ``report.md`` into ``out_dir``, each atomically, after both rendered."""
    html_path = out_dir / "report.html"
    md_path = out_dir / "report.md"
    html_text = render_html(report)
    md_text = render_markdown(report, image_hint)
    atomic_write_text(html_path, html_text)
    atomic_write_text(md_path, md_text)
    return Written(html=html_path, markdown=md_path)


def build_report(
    project: Project,
    targets: Sequence[ResolvedTarget],
    results_dir: Path,
    out_dir: Path,
    *,
    mirrors: Mapping[str, str] | None,
    environ: Mapping[str, str],
    progress: Callable[[str], None],
    title: str | None = None,
) -> tuple[ResultTable, Written]:
    """The report stage's entry point: read every result and lockfile, build the table, write both files.

    ``mirrors`` None: lockfile freshness uses ``ENVSPEC_MIRRORS`` as ``envspec lock`` would.
    ``title`` None: ``report_title(environ)``.
    """
    if not results_dir.is_dir():
        raise SpecError(
            f"{results_dir}: no such folder",
            tip="pass the folder `envspec smoke --out` wrote into (one <target>/ folder per target)",
        )
    results = read_results(results_dir)
    progress(f"report: {len(results)} smoke result(s) in {results_dir}, {len(targets)} target(s) in the spec")
    locks = {t.name: read_lock(project, t, mirrors) for t in targets}
    table = build_table(targets, results, locks, github_context(environ), title or report_title(environ))
    hint = (
        f"Images: report.html in the `{REPORT_ARTIFACT}` artifact; each target's smoke.png in its "
        f"`{artifact_name('<target>')}` artifact."
        if environ.get("GITHUB_ACTIONS") == "true"
        else f"Images: see {out_dir / 'report.html'}."
    )
    written = write_report(table, out_dir, image_hint=hint)
    for row in table.rows:
        progress(f"  {row.target:<24} {row.status:<8} lock {row.lock.state}")
    progress(f"report: {table.headline}")
    return table, written


def report_title(env: Mapping[str, str]) -> str:
    """ "envspec <workflow>" inside a GitHub Actions workflow (the verify workflow: "envspec verify"),
    else "envspec report" (a local ``envspec report`` or ``envspec up``)."""
    workflow = " ".join(env.get("GITHUB_WORKFLOW", "").split()) if env.get("GITHUB_ACTIONS") == "true" else ""
    return f"envspec {workflow}" if workflow else "envspec report"


def github_context(env: Mapping[str, str]) -> list[tuple[str, str]]:
    """Where the results came from, when run in GitHub Actions (from its standard variables)."""
    context: list[tuple[str, str]] = []
    if env.get("GITHUB_REPOSITORY"):
        context.append(("repository", env["GITHUB_REPOSITORY"]))
    if env.get("GITHUB_REF_NAME"):
        context.append(("ref", env["GITHUB_REF_NAME"]))
    if env.get("GITHUB_SHA"):
        context.append(("commit", env["GITHUB_SHA"][:12]))
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        context.append(("run", f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"))
    return context
