"""A failed conda-lock run, told as one :class:`envspec.errors.EnvspecError`.

What failed is read from the shim's report file (``ENVSPEC_SHIM_REPORT``: unsatisfiable, an
unreachable channel, py-rattler itself) or, with a real conda/mamba, recognised in conda-lock's
output; a solver's conflict tree becomes one line, and the tip names the part of envspec.yml to change.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envspec.channels import ENV_VAR as MIRRORS_ENV
from envspec.channels import redact, shown
from envspec.errors import ChannelUnreachable, EnvspecError, ToolFailed, UnsatisfiableError
from envspec.lock import pypi

if TYPE_CHECKING:
    from envspec.lock.jobs import LockJob


def classify_failure(job: LockJob, report_path: Path, stderr: str, returncode: int) -> EnvspecError:
    report: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded: object = json.loads(report_path.read_text(encoding="utf-8"))
        report = loaded if isinstance(loaded, dict) else {}
    kind = report.get("envspec_kind")
    if job.pip is not None:
        stderr = pypi.scrub(job.pip, stderr)
    if kind is None:  # a real conda/mamba: recognise its error names in conda-lock's output
        if re.search(r"Unsatisfiable|PackagesNotFound|LibMambaUnsatisfiable|Could not solve|nothing provides", stderr):
            kind = "unsatisfiable"
        elif re.search(r"CondaHTTPError|UnavailableInvalidChannel|ChannelError|Could not resolve host", stderr):
            kind = "channel_unreachable"
    if kind == "unsatisfiable":
        explanation = flatten_tree(str(report.get("message") or _tail(stderr, 15)))
        vp = report.get("virtual_packages")
        vp_text = f" with virtual packages {', '.join(f'{k} {v}' for k, v in vp.items())}" if vp else ""
        if job.input.exclude_newer:
            vp_text += f" and records newer than {job.input.exclude_newer} excluded"
        return UnsatisfiableError(
            f"target {job.target} ({job.subdir}) is unsatisfiable{vp_text}:\n{explanation}",
            tip=unsatisfiable_tip(job, explanation),
        )
    if kind == "channel_unreachable":
        url = str(report.get("url") or next(iter(job.fetch_channels), "?"))
        return unreachable(job, url, str(report.get("message") or _tail(stderr, 3)))
    if kind == "internal" and report.get("message"):  # py-rattler failed or its process crashed
        return ToolFailed(
            f"py-rattler failed solving target {job.target} ({job.subdir}): {redact(str(report['message']))[:500]}",
            tip=f"rerun `envspec lock --target {job.target}`; if it fails again, try --solver conda|mamba|micromamba",
        )
    return ToolFailed(
        f"conda-lock failed for target {job.target} (exit {returncode}): {redact(_failure_detail(stderr))}",
        tip=f"rerun with `envspec lock --target {job.target} -v` for the full conda-lock output",
    )


_NO_CANDIDATES_RE = re.compile(r"No candidates were found for ([A-Za-z0-9_][A-Za-z0-9_.+-]*)")


def unsatisfiable_tip(job: LockJob, explanation: str) -> str:
    """Where in envspec.yml to look: ``dependencies:`` when a package every target asks for has no
    candidate in the channels (missing, or no version matches), else the target's own record."""
    missing = [n.lower() for n in _NO_CANDIDATES_RE.findall(explanation)]
    common = [n for n in dict.fromkeys(missing) if n in job.common]
    if job.input.exclude_newer and (missing or "after the cutoff" in explanation):
        return (
            f"what the solve needs was not all published by {job.input.exclude_newer}: pass a later "
            "--exclude-newer DATE (or `--exclude-newer none`)"
        )
    if common:
        names = ", ".join(f"`{n}`" for n in common)
        return (
            f"{names} has no matching package in {', '.join(job.channels)}: fix or remove it under `dependencies:` "
            "in envspec.yml (every target asks for it; a package only PyPI has goes under `pip:`), then "
            "`envspec render` and `envspec lock`"
        )
    return (
        f"relax the conflicting requirements in envspec.yml (targets.{job.target}) or its virtual packages, "
        "then `envspec render` and `envspec lock`"
    )


def flatten_tree(text: str) -> str:
    """A solver's conflict tree as one readable line: tree glyphs dropped, branches joined by ``; ``."""
    text = text.strip().removeprefix("Cannot solve the request because of:").strip()
    parts = [re.sub(r"^[\s│├└─|`-]+", "", line).strip() for line in text.splitlines()]
    out = ""
    for part in filter(None, parts):
        if not out:
            out = part
        elif out.endswith(":"):
            out += " " + part
        elif out.endswith(("require", "constrain", "incompatible")):
            out += (": " if out.endswith("incompatible") else " ") + part
        else:
            out += "; " + part
    return out


def unreachable(job: LockJob, url: str, detail: str) -> ChannelUnreachable:
    """The error names the URL it tried (the mirror's, ``user:***@`` when it has credentials)."""
    text = redact(" ".join(detail.split()))
    who = shown(url)
    if url in text:  # the detail quotes the URL again: show it the same way
        text = text.replace(url, who)
    return ChannelUnreachable(
        f"channel {who} is unreachable while locking {job.target}: {text}",
        tip=f"check the network/URL, or map the channel to a reachable mirror: --mirror NAME=URL "
        f"(or {MIRRORS_ENV}=NAME=URL), e.g. --mirror conda-forge=file:///srv/conda-forge",
    )


def _failure_detail(output: str) -> str:
    """What went wrong, without a Python traceback: a traceback's last line (the exception), else
    the tail of the output (``-v`` shows all of it)."""
    if "Traceback (most recent call last):" in output:
        after = output.rsplit("Traceback (most recent call last):", 1)[1]
        frames = re.compile(r"^(\s|File \"|\^|~|During handling|The above exception)")
        lines = [line for line in after.splitlines() if line.strip() and not frames.match(line)]
        if lines:
            return lines[-1].strip()
    return _tail(output, 10)


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
