"""``load_spec``/``parse_spec`` and what they return: a ``Spec`` (the checked document) and its
``ResolvedTarget`` records, one per target, which every later stage reads.

Loading is pure (text in, ``Spec`` out) apart from ``load_spec`` reading the file. Every malformed
input becomes a ``SpecError`` whose one-line message names the file, the field path, the line where
known, and what is expected.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import (
    ValidationError,
)

from envspec.errors import SpecError
from envspec.spec.schema import (
    CREDENTIALS_ERROR,
    CREDENTIALS_TIP,
    CUDA_VERSION_PACKAGE,
    TORCH_PACKAGE,
    Accelerator,
    SpecDocument,
    TargetDocument,
    spec_name,
)
from envspec.spec.yamlsrc import DuplicateKeyError, NonStringKeyError, YamlSource


@dataclass(frozen=True)
class ResolvedTarget:
    """A target with the common parts folded in: everything later steps need, nothing more."""

    name: str
    description: str
    subdir: str
    accelerator: Accelerator
    channels: tuple[str, ...]
    dependencies: tuple[str, ...]
    pip: tuple[str, ...]
    virtual_packages: dict[str, str]
    variables: dict[str, str]
    runner: str
    runner_has_accelerator: bool
    smoke_device: Accelerator
    torch_spec: str
    cuda_version: str | None
    env_name: str
    smoke_with_model: bool = True
    smoke_steps: int | None = None
    smoke_resolution: int | None = None
    pip_allow_sdist: tuple[str, ...] = ()
    common_dependencies: tuple[str, ...] = ()  # the spec's top-level `dependencies:` (in `dependencies` too)

    @property
    def platform_family(self) -> str:
        return self.subdir.split("-")[0]


@dataclass(frozen=True)
class Spec:
    path: Path
    document: SpecDocument

    @property
    def name(self) -> str:
        return self.document.name

    @property
    def channels(self) -> list[str]:
        return list(self.document.channels)

    @property
    def targets(self) -> dict[str, TargetDocument]:
        return dict(self.document.targets)

    def resolve(self, name: str) -> ResolvedTarget:
        """The record of target ``name``, made once per ``Spec``: every stage of a run (and ``up``'s
        target choice, doctor, install and report) gets the same object."""
        cache: dict[str, ResolvedTarget] = self.__dict__.setdefault("_resolved", {})
        if name not in cache:
            cache[name] = self._resolve(name)
        return cache[name]

    def _resolve(self, name: str) -> ResolvedTarget:
        try:
            target = self.document.targets[name]
        except KeyError:
            raise SpecError(
                f"{self.path}: no target named {name!r}",
                tip=f"choose one of: {', '.join(self.document.targets)}",
            ) from None
        torch_spec = next(s for s in target.torch if spec_name(s) == TORCH_PACKAGE)
        cuda_version = None
        for spec in target.torch:
            if spec_name(spec) == CUDA_VERSION_PACKAGE:
                cuda_version = str(_match_version(spec))
        variables = {"ENVSPEC_TARGET": name, "ENVSPEC_DEVICE": target.smoke_device, **target.variables}
        return ResolvedTarget(
            name=name,
            description=target.description,
            subdir=target.subdir,
            accelerator=target.accelerator,
            channels=tuple(self.document.channels),
            dependencies=(*self.document.dependencies, *target.torch, *target.packages),
            pip=(*self.document.pip, *target.pip),
            virtual_packages=dict(target.virtual_packages),
            variables=variables,
            runner=target.runner,
            runner_has_accelerator=target.runner_has_accelerator,
            smoke_device=target.smoke_device,
            torch_spec=torch_spec,
            cuda_version=cuda_version,
            env_name=f"{self.document.name}-{name}",
            smoke_with_model=target.smoke_with_model,
            smoke_steps=target.smoke_steps,
            smoke_resolution=target.smoke_resolution,
            pip_allow_sdist=tuple(self.document.pip_allow_sdist),
            common_dependencies=tuple(self.document.dependencies),
        )

    def resolve_all(self) -> list[ResolvedTarget]:
        return [self.resolve(name) for name in self.document.targets]


def _match_version(spec: str) -> str:
    from rattler import MatchSpec

    version = MatchSpec(spec).version
    text = str(version) if version is not None else "*"
    return text.removesuffix(".*").lstrip("=")


def parse_spec(text: str, path: Path) -> Spec:
    """Parse and validate spec text. Pure: no disk access."""
    try:
        source = YamlSource.parse(text)
    except NonStringKeyError as exc:
        raise SpecError(
            f"{path}:{exc.line}: {exc.path_text}: key {exc.key!r} is read by YAML as {exc.kind}, not a name",
            tip=f'quote it: "{exc.key}":',
        ) from None
    except DuplicateKeyError as exc:
        raise SpecError(
            f"{path}:{exc.line}: {exc.path_text}: duplicate key {exc.key!r}",
            tip="each key (and each target name) may appear once",
        ) from None
    except RecursionError:
        raise SpecError(
            f"{path}: YAML nested too deeply, or an alias (*name) that contains itself",
            tip="envspec.yml needs only a few levels of nesting; remove the self-referring anchor",
        ) from None
    except ValueError as exc:  # PyYAML's int() of a number over Python's 4300-digit limit
        raise SpecError(f"{path}: a number in it is too long ({str(exc)[:60]})", tip="shorten the number") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{path}{where}: not valid YAML: {problem}", tip="fix the YAML syntax") from None
    data: Any = source.data
    if not isinstance(data, dict):
        raise SpecError(
            f"{path}: expected a mapping at the top level, got {_kind(data)}", tip="see envspec.schema.json"
        )
    _refuse_control_characters(data, source, path)
    try:
        model = SpecDocument.model_validate(data)
    except RecursionError:
        raise SpecError(
            f"{path}: YAML nested too deeply, or an alias (*name) that contains itself",
            tip="envspec.yml needs only a few levels of nesting; remove the self-referring anchor",
        ) from None
    except ValidationError as exc:
        raise _to_spec_error(exc, source, path) from None
    return Spec(path=path, document=model)


def _unsafe_character(text: str) -> str | None:
    """The first character no generated file may carry raw: a control character (NUL, tab, newline,
    DEL, C1), a lone surrogate, or a Unicode line/paragraph separator (YAML reads both as line breaks)."""
    for ch in text:
        if unicodedata.category(ch) in UNSAFE_CATEGORIES:
            return ch
    return None


#: Cc: control characters; Cs: surrogates (cannot be written as UTF-8); Zl, Zp: line breaks to YAML.
UNSAFE_CATEGORIES: Final = frozenset({"Cc", "Cs", "Zl", "Zp"})


def _refuse_control_characters(data: object, source: YamlSource, path: Path) -> None:
    """Every string of the spec, keys included, is one line of printable text: it ends up in YAML
    comments and scalars, workflow files and environment variables (where a NUL crashes ``smoke``)."""
    stack: list[tuple[object, tuple[str | int, ...]]] = [(data, ())]
    seen: set[int] = set()
    while stack:
        node, loc = stack.pop()
        if id(node) in seen:  # aliases share nodes
            continue
        seen.add(id(node))
        found: tuple[str, tuple[str | int, ...]] | None = None
        if isinstance(node, str):
            bad = _unsafe_character(node)
            found = (bad, loc) if bad is not None else None
        elif isinstance(node, dict):
            for key, value in reversed(list(node.items())):
                if isinstance(key, str) and (bad := _unsafe_character(key)) is not None:
                    found = (bad, (*loc, key))
                stack.append((value, (*loc, str(key))))
        elif isinstance(node, list):
            stack.extend((item, (*loc, i)) for i, item in reversed(list(enumerate(node))))
        if found is not None:
            bad, where_loc = found
            line = source.line_of(where_loc)
            where = f"{path}:{line}" if line else str(path)
            field_path = ".".join(str(p) for p in where_loc) or "(top level)"
            name = unicodedata.name(bad, "surrogate" if unicodedata.category(bad) == "Cs" else "control character")
            raise SpecError(
                f"{where}: {field_path}: contains {f'U+{ord(bad):04X}'} ({name.lower()}); "
                "every text field is one line of printable characters",
                tip="remove the character (envspec writes these fields into YAML files and environment variables)",
            )


def load_spec(path: Path) -> Spec:
    from envspec.fsutil import read_regular_text

    try:
        text = read_regular_text(path)  # a FIFO or /dev/zero as envspec.yml never hangs
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found", tip="run from the repository root or pass --spec PATH") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read: {exc}", tip="check the file's permissions and encoding") from None
    return parse_spec(text, path)


def _kind(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


def _to_spec_error(exc: ValidationError, source: YamlSource, path: Path) -> SpecError:
    errors = exc.errors(include_url=False)
    # A misspelled key shows up twice (unknown key + required field missing): name the typo.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p.startswith("function-after")))
    # pydantic appends "[key]" markers for dict keys; keep the real path only.
    loc = tuple(p for p in loc if p != "[key]")
    field_path = ".".join(str(p) for p in loc) or "(top level)"
    line = source.line_of(loc)
    where = f"{path}:{line}" if line else str(path)
    message = first["msg"].removeprefix("Value error, ")
    kind = first["type"]
    if kind == "extra_forbidden":
        message = "unknown key"
        tip = "remove it or fix its spelling; allowed keys are in envspec.schema.json"
    elif kind == "missing":
        message = "required field is missing"
        tip = "add it; see envspec.schema.json"
    elif kind == "literal_error":
        tip = "use one of the values listed"
    elif kind == CREDENTIALS_ERROR:
        tip = CREDENTIALS_TIP
    else:
        tip = "see envspec.schema.json for the expected form"
    return SpecError(f"{where}: {field_path}: {message}", tip=tip)
