"""The table model (pure): smoke results and lock summaries of every target -> ``ResultTable``.

A row's status is judged from the evidence (the checks and the device), not from the ``verdict``
smoke.json claims (``judge``). ``build_table`` is what the tests check; the pages render it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from envspec.lock import torch_build_label
from envspec.report.inputs import (
    SMOKE_JSON,
    SMOKE_PNG,
    LockReading,
    SmokeBenchmark,
    SmokeRead,
    SmokeReport,
    png_size,
)
from envspec.spec import ResolvedTarget

#: A smoke.png with more pixels than this is not decoded nor embedded (a small file can inflate to
#: gigabytes: a decompression bomb for Pillow and for the browser showing the report).
MAX_DECODE_PIXELS: Final = 4096 * 4096

Status = Literal["pass", "fail", "error", "missing"]
DeviceVerdict = Literal["promised", "allowed-cpu", "wrong", "unknown"]


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
    lock: LockReading
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
    name: str, target: ResolvedTarget | None, lock: LockReading, *, status: Status, reason: str, promised: str
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
    lock: LockReading,
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
    locks: Mapping[str, LockReading],
    context: Iterable[tuple[str, str]] = (),
    title: str = "envspec report",
) -> ResultTable:
    """The table model: one row per target of the spec (missing ones included), in spec order,
    then rows for results of targets the spec does not have. Pure."""
    targets = list(targets)
    rows = [build_row(t.name, t, results.get(t.name), locks.get(t.name, LockReading(state="unknown"))) for t in targets]
    known = {t.name for t in targets}
    rows.extend(
        build_row(name, None, read, LockReading(state="unknown", problem="not a target of the spec"))
        for name, read in sorted(results.items())
        if name not in known
    )
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return ResultTable(rows=tuple(rows), context=tuple(context), counts=counts, title=title)
