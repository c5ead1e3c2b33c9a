"""Record real PyPI metadata for the offline PyPI tests (run by hand; needs https://pypi.org).

``python tests/data/pypi/record.py`` downloads, for each (project, version) in ``RECORD``, the
PEP 658 ``.metadata`` file of one real wheel (the first whose tags match ``WHEEL_TAGS``: CPython
3.12 on manylinux x86-64, else a pure-Python wheel) from PyPI's JSON simple API, writes it to
``metadata/<wheel file name>.metadata`` and records the source URL, its sha256 and the date in
``provenance.json``. The tests (``tests/pypi_index.py``) serve these files as a local index: each
project gets a tiny wheel of the same file name whose ``METADATA`` is the recorded one, so the
resolver sees PyPI's real ``Requires-Dist`` without the network.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIMPLE = "https://pypi.org/simple"
WHEEL_TAGS = ("cp312-cp312-manylinux_2_28_x86_64", "cp312-cp312-manylinux_2_17_x86_64", "abi3-manylinux_2_17_x86_64",
              "py3-none-any", "py2.py3-none-any")  # fmt: skip
RECORD: tuple[tuple[str, str], ...] = (
    ("torch", "2.7.1"),  # conda-forge's linux-64 pytorch 2.7.1 (cuda129): its PyPI twin lists the nvidia-* cu12 wheels
    ("torch", "2.9.0"),  # what torchvision 0.24.0 pins
    ("torch", "2.13.0"),  # CUDA 13: cuda-toolkit[...] and the nvidia-*-cu13 wheels (TORCH_RUNTIME_WHEELS)
    ("cuda-toolkit", "13.0.3.0"),  # what torch 2.13.0 asks for: its extras name the CUDA 13 library wheels
    ("torchvision", "0.22.1"),  # torch==2.7.1
    ("torchvision", "0.24.0"),  # torch==2.9.0
    ("accelerate", "1.9.0"),
    ("kornia", "0.8.1"),
    ("kornia-rs", "0.1.9"),
    ("torchmetrics", "1.8.2"),
    ("lightning-utilities", "0.15.2"),
    ("nvidia-ml-py", "13.615.71"),
    ("pynvml", "13.0.1"),
    ("compel", "2.3.1"),  # transformers>=4.25,<5
    ("compel", "2.5.1"),  # transformers>=5
    ("pyparsing", "3.3.3"),
    ("six", "1.17.0"),
)


def _files(project: str) -> list[dict[str, object]]:
    request = urllib.request.Request(f"{SIMPLE}/{project}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        files: list[dict[str, object]] = json.load(response)["files"]
        return files


def _candidates(project: str, version: str) -> list[dict[str, object]]:
    """The project's wheels of ``version``, best-matching ``WHEEL_TAGS`` first."""
    stem = project.replace("-", "_").lower()
    wheels = [f for f in _files(project) if str(f["filename"]).lower().startswith(f"{stem}-{version}-")
              and str(f["filename"]).endswith(".whl")]  # fmt: skip
    return [f for tag in WHEEL_TAGS for f in wheels if tag in str(f["filename"])]


def _fetch(project: str, version: str) -> tuple[dict[str, object], str, bytes]:
    for f in _candidates(project, version):
        url = f"{f['url']}.metadata"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                return f, url, response.read()
        except urllib.error.HTTPError:
            continue  # this file has no PEP 658 metadata: try the next
    for f in _candidates(project, version):  # none: read METADATA out of the (small) wheel itself
        if int(str(f.get("size") or 0)) < 64 << 20:
            with urllib.request.urlopen(str(f["url"]), timeout=120) as response:
                blob = response.read()
            with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
                return f, f"{f['url']}#{name}", zf.read(name)
    raise SystemExit(f"{project} {version}: no wheel with a .metadata file")


def main() -> int:
    out = HERE / "metadata"
    out.mkdir(exist_ok=True)
    provenance: dict[str, object] = {}
    for project, version in RECORD:
        f, url, data = _fetch(project, version)
        name = f"{f['filename']}.metadata"
        (out / name).write_bytes(data)
        provenance[name] = {"source": url, "sha256": hashlib.sha256(data).hexdigest()}
        sys.stderr.write(f"recorded {name}\n")
    (HERE / "provenance.json").write_text(
        json.dumps(
            {
                "recorded": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "by": "python tests/data/pypi/record.py (PEP 658 .metadata files of real wheels, from pypi.org)",
                "files": provenance,
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
