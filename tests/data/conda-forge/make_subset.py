"""Cut the vendored conda-forge subset out of the shared snapshot of real conda-forge records.

    python tests/data/conda-forge/make_subset.py PATH/TO/conda-forge-records.tar.gz [--out DIR]

Tests never run this; it is here so that the subset can be rebuilt and checked. It reads the
tarball's ``conda-forge-records/<subdir>/repodata.json`` for linux-64, osx-64, osx-arm64, win-64
and noarch, and ``targets.json`` beside this file, and writes ``<subdir>/repodata.json`` under
``--out`` (default: beside this file). Records are copied unchanged (every field, every value);
the subset is made by choosing records, never by editing them. Files are serialised exactly as the
source serialises them (``json.dumps(indent=1, sort_keys=True)``), plus a final newline.

Which records, per target of ``targets.json`` (pool = the target's subdir + noarch):

1. drop ``python`` records whose major.minor is not in ``subset.pythons``;
2. prune the pool to a fixpoint: drop every record with a dependency (virtual ``__*`` ones
   excepted) that no record left in the pool matches (py-rattler's MatchSpec decides), so e.g.
   a py311 numpy goes with the pythons it needs;
3. keep the transitive closure of the seed names (``subset.seeds``: every surviving record of
   them), following each record's ``depends`` to EVERY pool record that matches it: all versions
   and builds that could satisfy it, not only the ones one solve picks, so the solver has real
   choices (CPU builds next to CUDA builds, older releases, other CUDA minor versions).

``constrains`` are not followed (a constrained package is installed only if something depends on
it); the metapackages that pytorch's ``constrains`` name (``pytorch-cpu``, ``pytorch-gpu``) are
seeds. Virtual-package dependencies are not used to prune, so records a target's virtual
packages reject stay in, as the traps they are. The union over targets is written.

Then every target (and every ``unsatisfiable`` case) of ``targets.json`` is solved with py-rattler
against both the full snapshot and the subset, and the script fails unless both give the same
records (or both fail).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SUBDIRS = ("linux-64", "osx-64", "osx-arm64", "win-64", "noarch")
KEYS = ("packages", "packages.conda")

Key = tuple[str, str]  # (subdir, file name)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def extract(tarball: Path, dest: Path) -> Path:
    """The five subdirs' repodata.json of the tarball, under ``dest``; returns the channel root."""
    with tarfile.open(tarball, "r:gz") as tar:
        for subdir in SUBDIRS:
            member = tar.getmember(f"conda-forge-records/{subdir}/repodata.json")
            src = tar.extractfile(member)
            if src is None:
                raise SystemExit(f"{member.name} is not a file in {tarball}")
            out = dest / subdir / "repodata.json"
            out.parent.mkdir(parents=True)
            out.write_bytes(src.read())
    return dest


class Pool:
    """The records of one channel, as raw JSON (to copy) and as py-rattler records (to match)."""

    def __init__(self, root: Path) -> None:
        from rattler import Channel, RepoData

        self.raw: dict[str, dict[str, Any]] = {}
        self.where: dict[Key, str] = {}  # which of packages / packages.conda
        self.record: dict[Key, Any] = {}
        self.name: dict[Key, str] = {}
        channel = Channel(root.as_uri())
        for subdir in SUBDIRS:
            data = json.loads((root / subdir / "repodata.json").read_text(encoding="utf-8"))
            self.raw[subdir] = data
            for section in KEYS:
                for fn, rec in data.get(section, {}).items():
                    self.where[(subdir, fn)] = section
                    self.name[(subdir, fn)] = rec["name"]
            for rec in RepoData.from_path(root / subdir / "repodata.json").into_repo_data(channel):
                self.record[(subdir, rec.file_name)] = rec
        missing = set(self.where) - set(self.record)
        if missing:
            raise SystemExit(f"py-rattler did not read {len(missing)} records, e.g. {sorted(missing)[:3]}")
        self._matches: dict[tuple[str, str], set[Key]] = {}

    def depends(self, key: Key) -> list[str]:
        subdir, fn = key
        deps: list[str] = self.raw[subdir][self.where[key]][fn].get("depends", [])
        return [d for d in deps if not d.startswith("__")]

    def matching(self, spec: str, subdir: str, by_name: dict[str, set[Key]]) -> set[Key]:
        """Records of ``subdir`` + noarch that ``spec`` matches (cached per target subdir)."""
        cache_key = (subdir, spec)
        if cache_key not in self._matches:
            from rattler import MatchSpec

            ms = MatchSpec(spec)
            name = ms.name.normalized
            self._matches[cache_key] = {k for k in by_name.get(name, ()) if ms.matches(self.record[k])}
        return self._matches[cache_key]

    def select(self, subdir: str, pythons: set[str], seeds: set[str]) -> set[Key]:
        pool = {k for k in self.where if k[0] in {subdir, "noarch"}}
        pool = {k for k in pool if self.name[k] != "python" or _minor(str(self.record[k].version)) in pythons}
        by_name: dict[str, set[Key]] = collections.defaultdict(set)
        for k in pool:
            by_name[self.name[k]].add(k)
        while True:  # 2. prune records with an unsatisfiable (non-virtual) dependency
            dead = {k for k in pool if any(not (self.matching(d, subdir, by_name) & pool) for d in self.depends(k))}
            if not dead:
                break
            pool -= dead
        chosen: set[Key] = set()
        todo = [k for k in pool if self.name[k] in seeds]
        while todo:  # 3. closure over every matching record
            k = todo.pop()
            if k in chosen:
                continue
            chosen.add(k)
            for dep in self.depends(k):
                todo.extend(self.matching(dep, subdir, by_name) & pool)
        return chosen


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def write(pool: Pool, keys: set[Key], out: Path) -> dict[str, tuple[int, int]]:
    stats: dict[str, tuple[int, int]] = {}
    for subdir in SUBDIRS:
        src = pool.raw[subdir]
        data: dict[str, Any] = {k: v for k, v in src.items() if k not in KEYS}
        for section in KEYS:
            if section in src:
                data[section] = {fn: rec for fn, rec in src[section].items() if (subdir, fn) in keys}
        path = out / subdir / "repodata.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        path.write_text(text, encoding="utf-8", newline="\n")
        stats[subdir] = (sum(len(data.get(s, {})) for s in KEYS), len(text.encode()))
    return stats


async def solve(root: Path, subdir: str, specs: list[str], vpkgs: dict[str, str], cache: Path) -> list[str] | str:
    from rattler import BuildString, Channel, Gateway, GenericVirtualPackage, MatchSpec, PackageName, Version, solve
    from rattler.exceptions import SolverError

    virtual = []
    for name, value in vpkgs.items():
        version, _, build = value.partition(" ")
        virtual.append(GenericVirtualPackage(PackageName(name), Version(version), BuildString(build or "0")))
    try:
        records = await solve(
            [Channel(root.as_uri())],
            [MatchSpec(s) for s in specs],
            gateway=Gateway(cache_dir=cache),
            platforms=[subdir, "noarch"],
            virtual_packages=virtual,
            channel_relations="disabled",
        )
    except SolverError as exc:
        return str(exc)
    return sorted(f"{r.subdir}/{r.file_name}" for r in records)


def check(full: Path, subset: Path, targets: dict[str, Any], cache: Path) -> bool:
    cases = [(name, t["subdir"], t["specs"], t["virtual_packages"]) for name, t in targets["targets"].items()]
    for name, case in targets.get("unsatisfiable", {}).items():
        target = targets["targets"][case["target"]]
        cases.append((name, target["subdir"], case["specs"], target["virtual_packages"]))
    ok = True
    for name, subdir, specs, vpkgs in cases:
        a = asyncio.run(solve(full, subdir, specs, vpkgs, cache))
        b = asyncio.run(solve(subset, subdir, specs, vpkgs, cache))
        same = a == b
        ok &= same
        what = f"{len(a)} records" if isinstance(a, list) else "unsatisfiable"
        print(f"  {name:40} {' '.join(specs):55} {what:16} {'same' if same else 'DIFFERENT'}", file=sys.stderr)
        if not same:
            print(f"    full:   {a}\n    subset: {b}", file=sys.stderr)
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tarball", type=Path, help="conda-forge-records.tar.gz (the shared snapshot)")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write <subdir>/repodata.json")
    parser.add_argument("--targets", type=Path, default=HERE / "targets.json")
    args = parser.parse_args(argv)

    targets = json.loads(args.targets.read_text(encoding="utf-8"))
    pythons = set(targets["subset"]["pythons"])
    seeds = set(targets["subset"]["seeds"])
    with tempfile.TemporaryDirectory() as tmp:
        full = extract(args.tarball, Path(tmp) / "full")
        pool = Pool(full)
        keys: set[Key] = set()
        for target in targets["targets"].values():
            keys |= pool.select(target["subdir"], pythons, seeds)
        stats = write(pool, keys, args.out)
        print(f"source {args.tarball.name} sha256 {sha256(args.tarball)}", file=sys.stderr)
        for subdir, (count, size) in stats.items():
            print(f"  {subdir:10} {count:5} records {size:9,} bytes", file=sys.stderr)
        total = sum(c for c, _ in stats.values()), sum(s for _, s in stats.values())
        print(f"  {'total':10} {total[0]:5} records {total[1]:9,} bytes", file=sys.stderr)
        print("solves, full snapshot vs subset:", file=sys.stderr)
        ok = check(full, args.out.resolve(), targets, Path(tmp) / "rattler-cache")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
