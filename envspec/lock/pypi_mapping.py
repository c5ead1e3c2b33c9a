"""conda <-> PyPI names: the shipped mapping, and ``nox -s pypi_mapping``, which refreshes it.

``envspec/lock/pypi_mapping.json`` says which PyPI distributions each conda-forge package
provides (``pytorch`` provides ``torch``, ``matplotlib-base`` provides ``matplotlib``). The lock
uses it twice: every conda package of a target's solution that provides a PyPI distribution is
fixed at its conda version in the PyPI resolution (:mod:`envspec.lock.pypi_resolve`), and a PyPI
solution that would install one of them a second time is refused by name.

The file is kept small and fast to read (``{"format": 1, "same": [conda names whose PyPI name is
the same], "renamed": {conda name: [PyPI names]}}``; about 12,000 names, ~200 kB, read once per
run) and carries no logic; where it came from is in ``pypi_mapping.provenance.json``.

``python -m envspec.lock.pypi_mapping [--source URL_OR_FILE | --from-pypi PROJECT[==VERSION]]``
rewrites both files from:

* ``--source`` (default :data:`PARSELMOUTH`): prefix-dev/parselmouth's conda-forge mapping, what
  pixi uses (``{conda name: [PyPI names] | null}``), or a file/URL in the grayskull format conda-lock
  uses by default (``{PyPI name: {"conda_name": ...}}``); the format is recognised by its shape;
* ``--from-pypi conda-pypi``: the grayskull mapping that the ``conda-pypi`` package (conda's own
  PyPI-interoperability plugin) ships inside its wheel, fetched with ``pip download`` from PyPI —
  for machines that reach PyPI but not GitHub. The provenance then names the wheel, its version
  and both sha256s.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

MAPPING_FILE: Final = Path(__file__).with_name("pypi_mapping.json")
PROVENANCE_FILE: Final = MAPPING_FILE.with_name("pypi_mapping.provenance.json")
FORMAT: Final = 1
PARSELMOUTH: Final = (
    "https://raw.githubusercontent.com/prefix-dev/parselmouth/main/files/v0/conda-forge/compressed_mapping.json"
)
#: Where the grayskull mapping lies inside a PyPI package's wheel.
WHEEL_MEMBERS: Final = {"conda-pypi": "conda_pypi/grayskull_pypi_mapping.json"}


def canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


# ---------------------------------------------------------------------------------------------
# Reading the shipped file (what the lock uses)
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def conda_to_pypi() -> dict[str, tuple[str, ...]]:
    """``{conda name: (PyPI names it provides, canonical)}`` from the shipped file."""
    return parse(MAPPING_FILE.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def pypi_to_conda() -> dict[str, str]:
    """``{PyPI name: conda name}`` (``torch`` -> ``pytorch``); a name several conda packages
    provide maps to the first in name order."""
    out: dict[str, str] = {}
    for conda, names in sorted(conda_to_pypi().items()):
        for name in names:
            out.setdefault(name, conda)
    return out


def parse(text: str) -> dict[str, tuple[str, ...]]:
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"not an envspec PyPI mapping of format {FORMAT}")
    out: dict[str, tuple[str, ...]] = {str(n): (str(n),) for n in data.get("same", [])}
    for conda, names in (data.get("renamed") or {}).items():
        out[str(conda)] = tuple(str(n) for n in names)
    return out


def render(conda_pypi: Mapping[str, set[str]]) -> str:
    """The shipped file's text (sorted, one name per line: diffs stay readable)."""
    same = sorted(c for c, names in conda_pypi.items() if names == {c})
    renamed = {c: sorted(names) for c, names in sorted(conda_pypi.items()) if names and names != {c}}
    return json.dumps({"format": FORMAT, "same": same, "renamed": renamed}, indent=0, sort_keys=True) + "\n"


# ---------------------------------------------------------------------------------------------
# Refreshing it
# ---------------------------------------------------------------------------------------------


def from_source(data: Any) -> dict[str, set[str]]:
    """{conda name: PyPI names} from a parselmouth (conda-keyed) or grayskull (PyPI-keyed) mapping."""
    if not isinstance(data, dict) or not data:
        raise ValueError("the mapping source is not a non-empty JSON object")
    out: dict[str, set[str]] = {}
    sample = next(iter(data.values()))
    if isinstance(sample, dict) or (sample is None and any(isinstance(v, dict) for v in data.values())):
        for pypi, entry in data.items():  # grayskull: {pypi: {"conda_name": ...}}
            if isinstance(entry, dict) and entry.get("conda_name"):
                name = canonical(str(entry.get("pypi_name") or pypi))
                out.setdefault(str(entry["conda_name"]).lower(), set()).add(name)
        return out
    for conda, names in data.items():  # parselmouth: {conda: [pypi, ...] | pypi | null}
        if names is None:
            continue
        listed = [names] if isinstance(names, str) else list(names)
        if listed:
            out[str(conda).lower()] = {canonical(str(n)) for n in listed}
    return out


# The refresh (``nox -s pypi_mapping``) imports what only it needs: ``envspec lock`` reads this
# module's table on every run and must not pay for an HTTP client, zipfile or argparse.


def read_url_or_file(source: str) -> bytes:
    import urllib.request

    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=120) as response:
            data: bytes = response.read()
            return data
    return Path(source.removeprefix("file://")).read_bytes()


def from_pypi(requirement: str, work: Path) -> tuple[bytes, dict[str, str]]:
    """The mapping a PyPI package ships, fetched with ``pip download --no-deps``: (bytes, provenance)."""
    import subprocess
    import zipfile

    project = canonical(requirement.split("==", maxsplit=1)[0])
    member = WHEEL_MEMBERS.get(project)
    if member is None:
        raise SystemExit(f"--from-pypi: envspec knows where the mapping is only in {', '.join(WHEEL_MEMBERS)}")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", str(work), requirement]
    subprocess.run(cmd, check=True, timeout=300)
    (wheel,) = work.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(member)
    version = wheel.name.split("-")[1]
    return data, {
        "package": f"{project}=={version}",
        "wheel": wheel.name,
        "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "member": member,
        "source": f"https://pypi.org/project/{project}/{version}/ ({wheel.name}, {member})",
    }


def main(argv: list[str] | None = None) -> int:
    import argparse
    import datetime as dt
    import tempfile

    parser = argparse.ArgumentParser(prog="python -m envspec.lock.pypi_mapping", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--source", default=PARSELMOUTH, help="parselmouth or grayskull mapping JSON: URL or file")
    group.add_argument("--from-pypi", metavar="PROJECT[==VERSION]", help="take the mapping a PyPI package ships")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.from_pypi:
            raw, provenance = from_pypi(args.from_pypi, Path(tmp))
        else:
            raw, provenance = read_url_or_file(args.source), {"source": args.source}
    mapping = from_source(json.loads(raw))
    text = render(mapping)
    parse(text)  # what the lock reads back
    MAPPING_FILE.write_text(text, encoding="utf-8")
    provenance.update(
        {
            "source_sha256": hashlib.sha256(raw).hexdigest(),
            "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "generator": "python -m envspec.lock.pypi_mapping (nox -s pypi_mapping)",
            "conda_names": str(len(mapping)),
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
        }
    )
    PROVENANCE_FILE.write_text(json.dumps(provenance, indent=1) + "\n", encoding="utf-8")
    sys.stderr.write(f"wrote {MAPPING_FILE} ({len(mapping)} conda names) from {provenance['source']}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
