"""The report in a real headless browser (Debian's chromium): the page loads from file://, the
matrix table has one row per target with its status, images decode, and the screenshot shows them.

Needs chromium (`apt-get install -y chromium`); skipped with that reason when it is absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from smokefixtures import decode_png, write_conda_lock, write_standard_results

from envspec.cli.main import main

pytestmark = pytest.mark.integration

WINDOW = (1400, 1000)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed (Debian: apt-get update && apt-get install -y chromium)")


def _run_chromium(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--force-color-profile=srgb",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture
def built_report(project_copy: Path, tmp_path: Path) -> Path:
    spec = project_copy / "envspec.yml"
    # the shipped linux-cpu target has no results: a "missing" row
    results = tmp_path / "results"
    write_standard_results(results)
    write_conda_lock(project_copy, "linux-cuda", "linux-64", "cuda129_mkl_py312_h3f1b2c4_300")
    out = tmp_path / "report"
    assert main(["--spec", str(spec), "report", str(results), "--out", str(out)]) == 0
    return out / "report.html"


def test_matrix_in_the_dom(built_report: Path, tmp_path: Path) -> None:
    exe = _chromium()
    proc = _run_chromium(exe, tmp_path / "profile", "--dump-dom", built_report.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert '<table class="matrix" id="matrix">' in dom
    rows = re.findall(r'<tr class="row status-\w+" data-target="([^"]+)" data-status="(\w+)"', dom)
    assert rows == [
        ("osx-arm64", "pass"),
        ("osx-64", "error"),
        ("linux-cuda", "pass"),
        ("linux-cpu", "missing"),
        ("win-cuda", "fail"),
    ]
    images = re.findall(r'<img src="(data:image/png;base64,[^"]+)" alt="smoke image of ([^"]+)"', dom)
    assert [name for _, name in images] == ["osx-arm64", "linux-cuda", "win-cuda"]
    # the message's <script> is text in the page, never an element
    assert "<script" not in dom
    assert "image is blank &lt;script&gt;alert('x')&lt;/script&gt; | a &amp; b" in dom
    assert "2/5 targets passed (2 pass, 1 fail, 1 error, 1 missing)" in dom
    assert "CPU allowed by --allow-cpu (e.g. a hosted runner)" in dom
    assert "cuda129_mkl_py312_h3f1b2c4_300" in dom


def _near(pixel: tuple[int, int, int], colour: tuple[int, int, int], tol: int = 6) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel, colour, strict=True))


def test_screenshot_shows_the_matrix_and_images(built_report: Path, tmp_path: Path) -> None:
    exe = _chromium()
    shot = tmp_path / "report.png"
    proc = _run_chromium(
        exe,
        tmp_path / "profile",
        f"--screenshot={shot}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        built_report.as_uri(),
    )
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    width, height, rows = decode_png(shot.read_bytes())
    assert (width, height) == WINDOW
    pixels: Counter[tuple[int, int, int]] = Counter()
    for row in rows[::2]:
        pixels.update(tuple(row[i : i + 3]) for i in range(0, len(row), 6))  # type: ignore[misc]
    # the status pills are painted: pass green, fail red, error amber
    for name, colour in (("pass", (0x1A, 0x7F, 0x37)), ("fail", (0xCF, 0x22, 0x2E)), ("error", (0x9A, 0x67, 0x00))):
        assert sum(n for p, n in pixels.items() if _near(p, colour)) > 40, f"no {name} pill in the screenshot"
    # the three embedded smoke images are decoded and drawn: thousands of distinct colours,
    # where text, pills and borders alone give a few hundred at most
    assert len(pixels) > 5000, f"only {len(pixels)} distinct colours: images not drawn?"
    # white page, not an error page
    assert pixels.most_common(1)[0][0] == (255, 255, 255)
