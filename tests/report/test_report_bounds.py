"""What the report decodes and writes is bounded (issue #21, family 7).

A smoke.png whose header promises more pixels than MAX_DECODE_PIXELS is neither decoded (Pillow)
nor embedded (the browser): a few kilobytes can inflate to gigabytes. report.md, appended to a
GitHub job summary that stops at 1 MiB, stays below it however many results and however long
their messages are.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from smokefixtures import make_png, smoke_json, write_result

from envspec.project import Project
from envspec.report import inputs, matrix, pages
from envspec.spec.load import load_spec


def _table(project_copy: Path, results: Path) -> matrix.ResultTable:
    targets = load_spec(Project(project_copy).spec_path).resolve_all()
    locks = {t.name: inputs.LockReading(state="unknown") for t in targets}
    return matrix.build_table(targets, inputs.read_results(results), locks)


def _bomb(width: int, height: int) -> bytes:
    """A PNG header for width x height and a small zlib stream of zero rows (a truncated bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * (1 << 20), 9)
    return inputs.PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_a_png_promising_too_many_pixels_is_not_decoded_nor_embedded(project_copy: Path, tmp_path: Path) -> None:
    write_result(
        tmp_path / "r", "linux-cuda", smoke_json("linux-cuda", promised="cuda", device="cuda"), _bomb(50000, 50000)
    )
    table = _table(project_copy, tmp_path / "r")
    row = next(r for r in table.rows if r.target == "linux-cuda")
    assert row.image is None and "50000x50000 pixels" in row.image_note
    assert "data:image/png" not in pages.render_html(table)


def test_a_normal_png_is_still_embedded(project_copy: Path, tmp_path: Path) -> None:
    write_result(
        tmp_path / "r", "linux-cuda", smoke_json("linux-cuda", promised="cuda", device="cuda"), make_png(64, 64)
    )
    table = _table(project_copy, tmp_path / "r")
    assert "data:image/png" in pages.render_html(table)


def test_the_markdown_summary_stays_under_github_s_1_mib(project_copy: Path, tmp_path: Path) -> None:
    message = "x" * 100_000
    for n in range(700):
        write_result(tmp_path / "r", f"t{n:03d}", smoke_json(f"t{n:03d}", verdict="fail", message=message), None)
    table = _table(project_copy, tmp_path / "r")
    text = pages.render_markdown(table, image_hint="images: see report.html")
    assert len(text.encode("utf-8")) <= pages.MARKDOWN_MAX_BYTES < 1 << 20
    assert "targets are not shown: a GitHub job summary stops at 1 MiB" in text
    assert max(len(line) for line in text.splitlines()) < 10_000  # each message cut, not one huge cell


def test_a_small_summary_is_unchanged(project_copy: Path, tmp_path: Path) -> None:
    write_result(tmp_path / "r", "linux-cuda", smoke_json("linux-cuda", promised="cuda", device="cuda"), None)
    text = pages.render_markdown(_table(project_copy, tmp_path / "r"))
    assert "not shown" not in text and "linux-cuda" in text
