"""Realistic smoke results for report tests: smoke.json (schema envspec-smoke/1) and real PNG files.

PNGs are written with zlib + struct (Pillow is not a test dependency), so they are real images a
browser decodes. Each target gets a different pattern so a screenshot shows four distinct images.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path
from typing import Any


def make_png(width: int, height: int, phase: float = 0.0) -> bytes:
    """An RGB PNG with a smooth colour pattern (not blank: many distinct values)."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter type: none
        for x in range(width):
            u, v = x / width, y / height
            r = 128 + 127 * math.sin(6.0 * u + phase)
            g = 128 + 127 * math.sin(5.0 * v + 2 * phase)
            b = 128 + 127 * math.sin(4.0 * (u + v) + 3 * phase)
            rows += bytes((int(r), int(g), int(b)))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
        + chunk(b"IEND", b"")
    )


VERSIONS = {
    "python": "3.12.11",
    "torch": "2.13.0",
    "torch_cuda": None,
    "diffusers": "0.42.1",
    "transformers": "5.2.0",
    "numpy": "2.3.4",
    "pillow": "12.0.0",
}

CHECK_NAMES = ("finite", "shape", "not_blank", "weights_loaded", "device_dtype", "deterministic")


def smoke_json(
    target: str,
    *,
    verdict: str = "pass",
    message: str = "",
    promised: str = "cpu",
    device: str | None = "cpu",
    allow_cpu: bool = False,
    failed: tuple[str, ...] = (),
    benchmark: dict[str, Any] | None = None,
) -> dict[str, Any]:
    checks = [
        {"name": n, "passed": n not in failed, "detail": "std 0.00 < 1.0" if n in failed else "ok"} for n in CHECK_NAMES
    ]
    return {
        "schema": "envspec-smoke/1",
        "target": target,
        "verdict": verdict,
        "message": message or f"{verdict}: tiny pipeline on {device}",
        "promised_device": promised,
        "device": device,
        "device_name": "x86_64 CPU (2 threads)" if device == "cpu" else "NVIDIA H100 80GB HBM3",
        "allow_cpu": allow_cpu,
        "dtype": "float32" if device != "cuda" else "float16",
        "mode": "tiny",
        "model": "tiny-sd1 (random weights)",
        "resolution": [128, 128],
        "steps": 4,
        "seed": 0,
        "versions": VERSIONS,
        "timings_s": {
            "import": 2.31,
            "load": 0.42,
            "first_step": 0.081,
            "median_step": 0.034,
            "decode": 0.052,
            "total": 3.12,
        },
        "memory": {"peak_host_mib": 452.0, "peak_device_mib": None},
        "image": {"file": "smoke.png", "width": 128, "height": 128, "mean": 121.4, "std": 48.2, "distinct_values": 256},
        "checks": checks,
        "benchmark": benchmark,
    }


BENCHMARK = {
    "it_per_s": 91.3,
    "ms_per_step": 10.95,
    "unet_gflop_per_step": 1606.5,
    "unet_tflops": 146.7,
    "peak_tflops": 989.0,
    "peak_share": 0.148,
    "compiled": True,
    "compile_s": 52.0,
    "batch": 2,
    "resolution": 512,
    "dtype": "float16",
}


def write_result(results: Path, target: str, data: dict[str, Any] | str, png: bytes | None) -> Path:
    folder = results / target
    folder.mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else json.dumps(data, indent=2)
    (folder / "smoke.json").write_text(text, encoding="utf-8")
    if png is not None:
        (folder / "smoke.png").write_bytes(png)
    return folder


def write_standard_results(results: Path) -> None:
    """pass (linux-cuda on a GPU, with a benchmark), pass on CPU allowed on a hosted runner (osx-arm64),
    fail (win-cuda, with markup in its message that must be escaped), error (osx-64: setup error, no
    image). A target with no folder at all is "missing"."""
    write_result(
        results,
        "linux-cuda",
        smoke_json("linux-cuda", promised="cuda", device="cuda", benchmark=BENCHMARK),
        make_png(128, 128, 1.3),
    )
    write_result(
        results,
        "osx-arm64",
        smoke_json("osx-arm64", promised="mps", device="cpu", allow_cpu=True, message="pass on cpu (MPS not usable)"),
        make_png(128, 128, 0.0),
    )
    write_result(
        results,
        "win-cuda",
        smoke_json(
            "win-cuda",
            verdict="fail",
            promised="cuda",
            device="cpu",
            allow_cpu=True,
            failed=("not_blank",),
            message="image is blank <script>alert('x')</script> | a & b",
        ),
        make_png(128, 128, 2.6),
    )
    error = smoke_json(
        "osx-64", verdict="error", message="setup error: torch is not importable (No module named 'torch')"
    )
    error.update(device=None, device_name=None, image=None, checks=[], timings_s={"import": 0.02})
    write_result(results, "osx-64", error, None)


CONDA_LOCK_V1 = """\
version: 1
metadata:
  content_hash:
    {subdir}: 3b1f0c
  channels:
  - url: conda-forge
    used_env_vars: []
  platforms:
  - {subdir}
  sources:
  - environment-{target}.yml
package:
- name: python
  version: 3.12.11
  manager: conda
  platform: {subdir}
  dependencies: {{}}
  url: https://conda.anaconda.org/conda-forge/{subdir}/python-3.12.11-h9e4cc4f_0_cpython.conda
  hash:
    md5: 94206474a5608243a10c92cefbe0908f
    sha256: 6cca004806ceceea9585d4d655059e951152fc774a471593d4f5138e6a54c81d
  category: main
  optional: false
- name: pytorch
  version: 2.9.1
  manager: conda
  platform: {subdir}
  dependencies:
    python: '>=3.12,<3.13.0a0'
  url: https://conda.anaconda.org/conda-forge/{subdir}/pytorch-2.9.1-{build}.conda
  hash:
    md5: 0f1e2d3c4b5a69788796a5b4c3d2e1f0
    sha256: 1111111111111111111111111111111111111111111111111111111111111111
  category: main
  optional: false
- name: numpy
  version: 2.3.4
  manager: conda
  platform: {subdir}
  dependencies: {{}}
  url: https://conda.anaconda.org/conda-forge/{subdir}/numpy-2.3.4-py312h33ff503_0.conda
  hash:
    md5: 0f1e2d3c4b5a69788796a5b4c3d2e1f1
    sha256: 2222222222222222222222222222222222222222222222222222222222222222
  category: main
  optional: false
"""


def write_conda_lock(root: Path, target: str, subdir: str, build: str) -> Path:
    path = root / "lockfiles" / f"{target}.conda-lock.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CONDA_LOCK_V1.format(target=target, subdir=subdir, build=build), encoding="utf-8")
    return path


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of an 8-bit RGB/RGBA non-interlaced PNG (what chromium writes)."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), "not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, (depth, color, interlace)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        prev = line
        rgb = bytes(line) if channels == 3 else bytes(v for i, v in enumerate(line) if i % 4 != 3)
        rows.append(rgb)
    return width, height, rows
