"""Keep the shipped PyPI <-> conda name mapping current: ``nox -s pypi_mapping`` runs this.

``python -m envspec.lock.pypi_mapping [--source URL_OR_FILE] [--spec envspec.yml]`` rewrites
``envspec/lock/pypi_mapping.json`` (the file ``envspec lock`` passes to conda-lock as
``--pypi_to_conda_lookup_file``) and ``pypi_mapping.provenance.json`` beside it.

The source is conda-lock's own default, the grayskull mapping that conda-forge's bot publishes
(``DEFAULT_SOURCE``; a local copy works too, for air-gapped machines). It has ~25,000 entries;
envspec keeps only the projects that matter to its environments: ``KEEP`` (the Stable Diffusion
stack and what people add to it) plus every conda package and pip requirement named in the spec.
The format is the source's own (``{pypi_name: {"pypi_name", "conda_name", "conda_forge"}}``), so
conda-lock reads it unchanged. Entries the source lacks keep their current value; the provenance
file records the source URL, its sha256, the date and which entries came from where.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from envspec.lock.pypi import MAPPING_FILE

DEFAULT_SOURCE: Final = (
    "https://raw.githubusercontent.com/regro/cf-graph-countyfair/master/mappings/pypi/grayskull_pypi_mapping.json"
)
PROVENANCE_FILE: Final = MAPPING_FILE.with_name("pypi_mapping.provenance.json")

#: PyPI projects always kept (their conda-forge names may differ: torch -> pytorch).
KEEP: Final = (
    "accelerate",
    "certifi",
    "charset-normalizer",
    "diffusers",
    "einops",
    "filelock",
    "fsspec",
    "huggingface-hub",
    "idna",
    "importlib-metadata",
    "jinja2",
    "markupsafe",
    "matplotlib",
    "mpmath",
    "msgpack",
    "networkx",
    "numpy",
    "omegaconf",
    "packaging",
    "pillow",
    "pip",
    "protobuf",
    "psutil",
    "pyyaml",
    "regex",
    "requests",
    "safetensors",
    "scipy",
    "sentencepiece",
    "setuptools",
    "sympy",
    "tables",
    "tokenizers",
    "torch",
    "torchvision",
    "tqdm",
    "transformers",
    "typing-extensions",
    "urllib3",
    "wheel",
)


def canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def spec_names(spec_path: Path) -> set[str]:
    """PyPI names of what the spec asks for: its pip requirements and (as PyPI names) its conda packages."""
    from envspec.spec.model import load_spec, pip_name

    spec = load_spec(spec_path)
    names: set[str] = set()
    for target in spec.resolve_all():
        names |= {pip_name(r) for r in target.pip}
        for dep in target.dependencies:
            names.add(canonical(dep.split("::")[-1].split()[0].split("=")[0].split("<")[0].split(">")[0]))
    return names


def select(
    source: Mapping[str, Any], current: Mapping[str, Any], wanted: Iterable[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The kept entries, and where each came from (``source`` or ``kept``: absent from the source)."""
    by_pypi = {canonical(k): v for k, v in source.items() if isinstance(v, dict)}
    by_conda = {str(v.get("conda_name")): canonical(k) for k, v in by_pypi.items()}
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name in sorted(set(wanted)):
        key = name if name in by_pypi else by_conda.get(name)  # a conda name (pytorch) finds torch
        if key is not None:
            entry = by_pypi[key]
            out[key] = {
                "pypi_name": key,
                "conda_name": str(entry.get("conda_name") or key),
                "conda_forge": str(entry.get("conda_forge") or entry.get("conda_name") or key),
            }
            origin[key] = "source"
        elif name in current:
            out[name] = current[name]
            origin[name] = "kept"
    return dict(sorted(out.items())), dict(sorted(origin.items()))


def read_source(source: str) -> bytes:
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=60) as response:
            data: bytes = response.read()
            return data
    return Path(source.removeprefix("file://")).read_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m envspec.lock.pypi_mapping", description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=DEFAULT_SOURCE, help="grayskull mapping JSON: URL or file")
    parser.add_argument("--spec", type=Path, default=Path("envspec.yml"), help="spec whose names are kept too")
    args = parser.parse_args(argv)
    raw = read_source(args.source)
    source = json.loads(raw)
    current = json.loads(MAPPING_FILE.read_text(encoding="utf-8")) if MAPPING_FILE.is_file() else {}
    wanted = {canonical(n) for n in KEEP} | {canonical(n) for n in current}
    if args.spec.is_file():
        wanted |= spec_names(args.spec)
    mapping, origin = select(source, current, wanted)
    MAPPING_FILE.write_text(json.dumps(mapping, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    provenance = {
        "source": args.source,
        "source_sha256": hashlib.sha256(raw).hexdigest(),
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generator": "python -m envspec.lock.pypi_mapping (nox -s pypi_mapping)",
        "entries": len(mapping),
        "origin": origin,
    }
    PROVENANCE_FILE.write_text(json.dumps(provenance, indent=1) + "\n", encoding="utf-8")
    sys.stderr.write(f"wrote {MAPPING_FILE} ({len(mapping)} entries) from {args.source}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
