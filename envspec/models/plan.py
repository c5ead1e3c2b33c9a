"""Which files of a repository, at one commit, a model entry takes, and where each one goes.

Pure: a listing of the repository (path, size, hash of every file, as the Hub's metadata gives it)
in, a list of planned files out. No network, no disk. The rules:

- ``layout: diffusers`` takes ``model_index.json``, licence files at the top, and from every
  component folder (a top-level folder holding a ``*config.json``) its config and tokenizer files
  and one set of weights: the variant's ``.safetensors``, else the variant's ``.bin``, else the plain
  ``.safetensors``, else the plain ``.bin`` (a sharded set comes with its index). The variant is
  dropped from the weights' file names at the destination (``unet/diffusion_pytorch_model.fp16.safetensors``
  lands as ``unet/diffusion_pytorch_model.safetensors``), so the folder loads with a plain
  ``from_pretrained(folder)``; shards keep their names because their index names them.
- ``layout: single_file`` takes the one file.
- ``include`` globs add files, ``exclude`` globs (or a component folder's name) remove them; each
  must match something, so a typo is an error rather than a silent no-op.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from envspec.spec import ModelEntryDocument

#: Files whose loading unpickles (runs code): refused unless the entry or the command trusts them.
PICKLE_SUFFIXES: Final = (".ckpt", ".bin", ".pt", ".pth", ".pkl", ".pickle")
#: Weight formats: these are never taken as "config files" of a component.
WEIGHT_EXTENSIONS: Final = frozenset(
    {"safetensors", "bin", "ckpt", "pt", "pth", "msgpack", "h5", "onnx", "onnx_data", "pb", "gguf", "tflite"}
)
#: Formats a PyTorch diffusers/transformers component loads, best first.
TORCH_FORMATS: Final = ("safetensors", "bin")
MODEL_INDEX: Final = "model_index.json"

_WEIGHT = re.compile(
    r"^(?P<base>[^.]+?)(?:\.(?P<variant>[A-Za-z0-9_]+))?(?:-(?P<shard>\d{5}-of-\d{5}))?\.(?P<ext>[a-z_]+)$"
)
_INDEX = re.compile(r"^(?P<base>[^.]+)\.(?P<ext>safetensors|bin)\.index(?:\.(?P<variant>[A-Za-z0-9_]+))?\.json$")
_LICENCE = re.compile(r"^(LICEN[CS]E|COPYING)([.-].*)?$", re.IGNORECASE)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SHA1 = re.compile(r"^[0-9a-f]{40}$")


class ModelsPlanError(ValueError):
    """The entry does not fit the repository (no such file, not a diffusers folder, a glob matching nothing)."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a repository at a commit, as the Hub lists it.

    LFS files carry the sha256 of their content; files kept in git carry their git blob id
    (sha1 of ``blob <size>\\0<content>``), the only hash the Hub publishes for them.
    """

    path: str
    size: int
    sha256: str | None = None
    git_sha1: str | None = None


@dataclass(frozen=True)
class PlannedFile:
    path: str  # in the repository
    dest: str  # relative to the model's folder
    size: int
    sha256: str | None
    git_sha1: str | None

    @property
    def pickle(self) -> bool:
        return is_pickle(self.path)


@dataclass(frozen=True)
class Plan:
    files: tuple[PlannedFile, ...]
    load: str  # what a pipeline loads, relative to the model's folder: "." or the single file
    notes: tuple[str, ...] = field(default=())

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def is_pickle(path: str) -> bool:
    return path.lower().endswith(PICKLE_SUFFIXES)


#: Unicode categories never allowed in a file name from a server: controls (C0, DEL, C1: a CSI
#: moves a terminal's cursor), format characters (bidi overrides reorder what is shown), surrogates,
#: private use, line and paragraph separators.
_UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def check_path(path: str) -> str:
    """A repository path that is safe to join under a folder and to show: relative, no '..', no
    drive or reserved characters, no control, format (bidi) or separator characters."""
    if not isinstance(path, str):
        raise ModelsPlanError(f"a file name in the repository listing is not a string: {type(path).__name__}")
    parts = path.split("/")
    if (
        not path
        or len(path) > 1000
        or any(part in ("", ".", "..") for part in parts)
        or any(c in '\\:*?"<>|' or unicodedata.category(c) in _UNSAFE_CATEGORIES for c in path)
    ):
        raise ModelsPlanError(
            f"unsafe file name {ascii(path)[:200]} in the repository listing "
            "(absolute, '..', or control, bidi or reserved characters)"
        )
    return path


def _check_listing(files: Sequence[RemoteFile]) -> dict[str, RemoteFile]:
    by_path: dict[str, RemoteFile] = {}
    for f in files:
        check_path(f.path)
        if f.size < 0:
            raise ModelsPlanError(f"{f.path}: negative size in the repository listing")
        if f.sha256 is not None and not _SHA256.match(f.sha256):
            raise ModelsPlanError(f"{f.path}: malformed sha256 {ascii(f.sha256)[:80]} in the repository listing")
        if f.git_sha1 is not None and not _SHA1.match(f.git_sha1):
            raise ModelsPlanError(f"{f.path}: malformed git blob id {ascii(f.git_sha1)[:80]} in the repository listing")
        if f.sha256 is None and f.git_sha1 is None:
            raise ModelsPlanError(f"{f.path}: the repository listing gives no hash for it")
        if f.path in by_path:
            raise ModelsPlanError(f"{f.path}: listed twice")
        by_path[f.path] = f
    return by_path


def _matches(pattern: str, path: str) -> bool:
    """A glob on the whole repository path; a pattern naming a folder matches everything under it."""
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, pattern.rstrip("/") + "/*")


def _components(paths: Sequence[str]) -> list[str]:
    folders: dict[str, bool] = {}
    for path in paths:
        parts = path.split("/")
        if len(parts) == 2:
            folders[parts[0]] = folders.get(parts[0], False) or parts[1].endswith("config.json")
    return sorted(name for name, has_config in folders.items() if has_config)


def _weights(
    component: str, names: Sequence[str], variant: str | None, notes: list[str]
) -> tuple[list[str], list[str]]:
    """Split a component folder's files into (other files, chosen weights). Names are bare file names."""
    others: list[str] = []
    groups: dict[tuple[str | None, str], list[str]] = {}
    unusable: set[str] = set()
    for name in names:
        index = _INDEX.match(name)
        if index:
            groups.setdefault((index["variant"], index["ext"]), []).append(name)
            continue
        ext = name.rsplit(".", 1)[-1] if "." in name else ""
        if ext not in WEIGHT_EXTENSIONS:
            others.append(name)
            continue
        weight = _WEIGHT.match(name)
        if weight is None or ext not in TORCH_FORMATS:
            unusable.add(ext)
            continue
        groups.setdefault((weight["variant"], ext), []).append(name)
    order: list[tuple[str | None, str]] = [(variant, fmt) for fmt in TORCH_FORMATS] if variant else []
    order += [(None, fmt) for fmt in TORCH_FORMATS]
    for key in order:
        chosen = groups.get(key)
        if not chosen:
            continue
        # A group of index files only (weights elsewhere) does not count.
        if all(_INDEX.match(n) for n in chosen):
            continue
        if variant and key[0] is None:
            notes.append(f"{component}: no {variant} weights, taking the plain ones ({key[1]})")
        return others, sorted(chosen)
    if unusable or groups:
        wanted = f"{variant} or plain" if variant else "plain"
        found = ", ".join(sorted(n for n in names if n not in others)[:4])
        raise ModelsPlanError(
            f"component {component!r} has no {wanted} .safetensors/.bin weights (it has: {found}); "
            "exclude it, or choose another variant or revision"
        )
    return others, []


def _dest_name(name: str, variant: str | None) -> str:
    """Drop the variant from a single weights file or an index; shards keep their names (the index names them)."""
    if not variant:
        return name
    index = _INDEX.match(name)
    if index and index["variant"] == variant:
        return f"{index['base']}.{index['ext']}.index.json"
    weight = _WEIGHT.match(name)
    if weight and weight["variant"] == variant and weight["shard"] is None:
        return f"{weight['base']}.{weight['ext']}"
    return name


def plan_files(entry: ModelEntryDocument, files: Sequence[RemoteFile]) -> Plan:
    """The files ``entry`` takes from a repository listing, with their destinations. Raises ModelsPlanError."""
    by_path = _check_listing(files)
    notes: list[str] = []
    chosen: dict[str, str] = {}  # repo path -> dest
    if entry.layout == "single_file":
        assert entry.file is not None  # the spec model guarantees it
        if entry.file not in by_path:
            raise ModelsPlanError(f"no file {entry.file!r} in {entry.repo} at this revision")
        chosen[entry.file] = entry.file
        load = entry.file
    else:
        if MODEL_INDEX not in by_path:
            raise ModelsPlanError(
                f"{entry.repo} has no {MODEL_INDEX} at this revision: not a diffusers folder "
                "(use layout: single_file and name the checkpoint in file:)"
            )
        load = "."
        chosen[MODEL_INDEX] = MODEL_INDEX
        for path in by_path:
            if "/" not in path and _LICENCE.match(path):
                chosen[path] = path
        for component in _components(list(by_path)):
            if any(_matches(p, component) for p in entry.exclude):
                continue
            names = sorted(p.split("/", 1)[1] for p in by_path if p.startswith(component + "/") and p.count("/") == 1)
            others, weights = _weights(component, names, entry.variant, notes)
            for name in others:
                chosen[f"{component}/{name}"] = f"{component}/{name}"
            for name in weights:
                chosen[f"{component}/{name}"] = f"{component}/{_dest_name(name, entry.variant)}"
    for pattern in entry.include:
        hits = [p for p in by_path if _matches(pattern, p)]
        if not hits:
            raise ModelsPlanError(f"include {pattern!r} matches no file of {entry.repo} at this revision")
        for path in hits:
            chosen.setdefault(path, path)
    for pattern in entry.exclude:
        if not any(_matches(pattern, p) for p in by_path):
            raise ModelsPlanError(f"exclude {pattern!r} matches no file of {entry.repo} at this revision")
        for path in [p for p in chosen if _matches(pattern, p)]:
            if path in (load, MODEL_INDEX):
                raise ModelsPlanError(f"exclude {pattern!r} removes {path}, which this entry needs")
            del chosen[path]
    seen: dict[str, str] = {}
    for path, dest in chosen.items():
        if dest in seen:
            raise ModelsPlanError(f"{seen[dest]} and {path} would both land at {dest}")
        seen[dest] = path
    planned = tuple(
        PlannedFile(path, dest, by_path[path].size, by_path[path].sha256, by_path[path].git_sha1)
        for path, dest in sorted(chosen.items())
    )
    return Plan(files=planned, load=load, notes=tuple(notes))
