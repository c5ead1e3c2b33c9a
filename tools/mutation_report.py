"""Summarise a `mutmut run` (mutmut 3.x): score per module, survivors by file:line, one final line.

    python tools/mutation_report.py [NAME_GLOB ...]

Reads what mutmut leaves under ``mutants/``: ``<file>.py.meta`` (JSON: exit code per mutant) and
``<file>.py.spans`` (JSON: the line span of each mutant function in the mutated copy). A survivor's
line in the real source is the first line where its mutant function differs from the original
function, counted from the original ``def`` (found with ``ast`` in the checked-out file).

Only mutants whose name matches one of NAME_GLOB (fnmatch, as ``mutmut run`` takes them; default:
all) are counted. Killed: mutmut's "killed" and "caught by type check" outcomes, plus timeouts
(a mutant that makes the tests hang is detected). Everything else in scope (survived, no tests,
not checked, suspicious) counts against the score. The last line printed is exactly
``mutation score: N% (killed K of M)``. Exit status 0, also with survivors: the score is a
measurement, not a gate.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import sys
from dataclasses import dataclass
from pathlib import Path

MUTANTS = Path("mutants")
KILLED = {1: "killed", 3: "killed", 37: "caught by type check", 36: "timeout", 24: "timeout", -24: "timeout"}
OTHER = {0: "survived", 5: "no tests", 33: "no tests", None: "not checked", 34: "skipped"}
SEP = "ǁ"  # mutmut's separator in method mutant names: x<SEP>Class<SEP>method__mutmut_N


@dataclass(frozen=True)
class Mutant:
    name: str  # e.g. envspec.lock.plan.x_plan__mutmut_12
    source: Path  # envspec/lock/plan.py
    status: str
    line: int | None = None
    text: str = ""  # the mutated source line


def outcome(code: int | None) -> str:
    if code in KILLED:
        return KILLED[code]
    return OTHER.get(code, "suspicious")


def _function_of(key: str) -> tuple[str, str]:
    """``x_plan__mutmut_12`` -> ("plan", "") ; ``xǁLockInputǁdigest__mutmut_3`` -> ("digest", "LockInput")."""
    stem = key.rsplit("__mutmut_", 1)[0]
    if stem.startswith("x" + SEP):
        _, cls, func = stem.split(SEP)
        return func, cls
    return stem.removeprefix("x_"), ""


def _def_lines(source: Path) -> dict[tuple[str, str], int]:
    """(function, class) -> line of its ``def`` in the checked-out file."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    out: dict[tuple[str, str], int] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out[(node.name, "")] = node.lineno
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    out[(item.name, node.name)] = item.lineno
    return out


def _locate(
    key: str, spans: dict[str, list[int]], mutated: list[str], defs: dict[tuple[str, str], int]
) -> tuple[int | None, str]:
    """Line in the checked-out source where mutant ``key`` differs, and the mutated line."""
    orig_key = key.rsplit("__mutmut_", 1)[0] + "__mutmut_orig"
    if key not in spans or orig_key not in spans:
        return None, ""
    (a0, a1), (b0, b1) = spans[orig_key], spans[key]
    orig, mut = mutated[a0 - 1 : a1], mutated[b0 - 1 : b1]
    start = defs.get(_function_of(key))
    d_orig = next((i for i, line in enumerate(orig) if line.lstrip().startswith(("def ", "async def "))), 0)
    d_mut = next((i for i, line in enumerate(mut) if line.lstrip().startswith(("def ", "async def "))), 0)
    body_orig, body_mut = orig[d_orig + 1 :], mut[d_mut + 1 :]
    for i, (x, y) in enumerate(zip(body_orig, body_mut, strict=False)):
        if x != y:
            return (None if start is None else start + 1 + i), y.strip()
    if len(body_orig) != len(body_mut):  # a mutant that removed or added trailing lines
        i = min(len(body_orig), len(body_mut))
        return (None if start is None else start + 1 + i), (body_mut[i].strip() if i < len(body_mut) else "")
    # only the signature changed (e.g. a default argument)
    return start, mut[d_mut].strip() if mut else ""


def collect(patterns: list[str]) -> list[Mutant]:
    out: list[Mutant] = []
    for meta_path in sorted(MUTANTS.rglob("*.py.meta")):
        rel = meta_path.relative_to(MUTANTS).with_suffix("")  # envspec/lock/plan.py
        module = ".".join(rel.with_suffix("").parts)
        codes: dict[str, int | None] = json.loads(meta_path.read_text(encoding="utf-8"))["exit_code_by_key"]
        spans_path = meta_path.with_suffix(".spans")
        spans = json.loads(spans_path.read_text(encoding="utf-8"))["spans"] if spans_path.exists() else {}
        mutated = (MUTANTS / rel).read_text(encoding="utf-8").splitlines()
        defs = _def_lines(rel) if rel.exists() else {}
        for name, code in codes.items():
            if patterns and not any(fnmatch.fnmatchcase(name, p) for p in patterns):
                continue
            status = outcome(code)
            line, text = (None, "")
            if status not in ("killed", "caught by type check", "timeout"):
                line, text = _locate(name.removeprefix(module + "."), spans, mutated, defs)
            out.append(Mutant(name, rel, status, line, text))
    return out


def main(argv: list[str]) -> int:
    mutants = collect(argv)
    if not mutants:
        print("no mutants in scope under mutants/: run `mutmut run` first", file=sys.stderr)
        print("mutation score: 0% (killed 0 of 0)")
        return 1
    by_file: dict[Path, list[Mutant]] = {}
    for m in mutants:
        by_file.setdefault(m.source, []).append(m)
    print("\nscore per module:")
    for source, ms in sorted(by_file.items()):
        killed = sum(m.status in ("killed", "caught by type check", "timeout") for m in ms)
        print(f"  {source}: {100 * killed / len(ms):.0f}% ({killed}/{len(ms)})")
    alive = sorted(
        (m for m in mutants if m.status not in ("killed", "caught by type check", "timeout")),
        key=lambda m: (str(m.source), m.line or 0, m.name),
    )
    if alive:
        print(f"\n{len(alive)} not killed (file:line  status  mutant  mutated line):")
        for m in alive:
            where = f"{m.source}:{m.line}" if m.line is not None else f"{m.source}:?"
            print(f"  {where}  {m.status}  {m.name.rsplit('.', 1)[-1]}  {m.text[:100]}")
    killed = len(mutants) - len(alive)
    print(f"mutation score: {100 * killed // len(mutants)}% (killed {killed} of {len(mutants)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
