"""The two pages of a ``ResultTable``: ``report.html`` (self-contained) and ``report.md`` (a GitHub
job summary). Text out, every input string escaped; the markdown stays under GitHub's 1 MiB."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Final

from envspec.channels import printable, redact
from envspec.report.inputs import TEST_CHANNEL_TEXT, png_size
from envspec.report.matrix import DeviceVerdict, ResultTable

#: Thumbnails are at most this many pixels on their longer side (when Pillow is there to shrink them).
THUMBNAIL_PX: Final = 256
#: GitHub stops a job summary at 1 MiB: report.md stays below it, whatever the inputs say.
MARKDOWN_MAX_BYTES: Final = 1000 * 1000
#: The longest text a markdown cell shows (reasons and names come from other machines' files).
MD_CELL_MAX_CHARS: Final = 2000

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
        finalize=_shown,
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


def _shown(value: object) -> object:
    """Every text a page shows, with secrets cut (a token in a URL or a header a message quotes) and
    terminal controls (ESC, CSI), bidi overrides and other format characters escaped (``\\x1b``):
    names and messages come from other machines' files. The images' data URIs are envspec's own."""
    if not isinstance(value, str) or value.startswith("data:image/png;base64,"):
        return value
    return printable(redact(value))


def md_cell(value: object) -> str:
    """Text safe inside a GitHub markdown table cell: HTML-escaped, pipes and markup neutralised,
    secrets cut, controls and bidi overrides escaped."""
    text = printable(redact(" ".join(str(value).split())))
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
