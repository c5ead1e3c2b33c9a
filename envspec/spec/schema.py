"""The one source's schema: a strict pydantic document of ``envspec.yml`` (``SpecDocument``, its
targets and models), the rules it checks, and the JSON schema made from it. ``envspec.spec.load``
reads the file into it and resolves each target."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from envspec.versions import version_tuple

SPEC_VERSION: Final = 1

Accelerator = Literal["cuda", "mps", "cpu"]

#: conda subdirs envspec knows how to lock for (conda's own list of real platforms).
Subdir = Literal[
    "linux-64",
    "linux-aarch64",
    "linux-ppc64le",
    "osx-64",
    "osx-arm64",
    "win-64",
    "win-arm64",
]

#: Virtual packages a target may declare, with the subdir families they make sense on.
KNOWN_VIRTUAL_PACKAGES: Final[dict[str, tuple[str, ...]]] = {
    "__unix": ("linux", "osx"),
    "__linux": ("linux",),
    "__glibc": ("linux",),
    "__osx": ("osx",),
    "__win": ("win",),
    "__cuda": ("linux", "win"),
    "__archspec": ("linux", "osx", "win"),
}


#: What each accelerator demands of a target, as data. ``torch_build`` is the glob the torch
#: package's build string must be pinned to, so a CPU build can never win on that target.
@dataclass(frozen=True)
class AcceleratorRule:
    requires_virtual: tuple[str, ...]
    torch_build_prefix: str | None
    min_virtual: dict[str, str] = field(default_factory=dict)
    requires_torch_packages: tuple[str, ...] = ()


ACCELERATOR_RULES: Final[dict[str, AcceleratorRule]] = {
    "cuda": AcceleratorRule(
        requires_virtual=("__cuda",), torch_build_prefix="cuda", requires_torch_packages=("cuda-version",)
    ),
    # MPS in torch >= 2.9 needs macOS 14 (domain notes: "torch >= 2.9 wants macOS 14 for MPS").
    "mps": AcceleratorRule(requires_virtual=("__osx",), torch_build_prefix=None, min_virtual={"__osx": "14"}),
    "cpu": AcceleratorRule(requires_virtual=(), torch_build_prefix=None),
}

TORCH_PACKAGE: Final = "pytorch"
#: Activation variables envspec sets itself (ENVSPEC_TARGET, ENVSPEC_DEVICE); a target may not override them.
RESERVED_VARIABLE_PREFIX: Final = "ENVSPEC_"
CUDA_VERSION_PACKAGE: Final = "cuda-version"

_VPKG_VALUE = re.compile(r"^[0-9][0-9A-Za-z._+]*( [A-Za-z0-9_.+]{1,64})?$")
_NAME = r"^[a-z0-9][a-z0-9._-]*$"
#: Where rattler puts a channel named by name alone (``pytorch::pytorch``).
_DEFAULT_CHANNEL_HOST: Final = "https://conda.anaconda.org/"


#: The error type (and its tip) of a secret written into envspec.yml.
CREDENTIALS_ERROR: Final = "credentials_in_spec"
CREDENTIALS_TIP: Final = (
    "envspec.yml is committed and copied into every generated file: name the channel (conda-forge::NAME) "
    "and give its mirror with the login on --mirror NAME=URL or in ENVSPEC_MIRRORS (README: Mirrors and "
    "credentials); set a secret variable in the shell or the CI's secrets"
)


def _no_credentials(value: str, what: str) -> str:
    """``value``, unless it holds a URL with a secret in it (user-info, an ``/t/TOKEN/`` path, a secret
    query value): in a match spec, a pip requirement or a variable it would be copied into environment
    files, lockfiles and the environment itself. Refused, the secret never quoted (conda-lock takes
    only ``$VAR`` placeholders for credentials, pixi only ``pixi auth login``)."""
    from pydantic_core import PydanticCustomError

    from envspec.channels import redact

    if "://" in value and redact(value) != value:
        raise PydanticCustomError(
            CREDENTIALS_ERROR,
            "{what} {shown} has credentials in a URL, and envspec.yml must hold no secret",
            {"what": what, "shown": repr(redact(value))},
        )
    return value


def _check_match_spec(value: str) -> str:
    """Parse with rattler's real MatchSpec parser; keep the user's text."""
    from rattler import MatchSpec

    _no_credentials(value, "conda match spec")
    try:
        parsed = MatchSpec(value)
    except Exception as exc:  # rattler raises its own InvalidMatchSpecError
        raise ValueError(f"invalid conda match spec {value!r}: {exc}") from None
    channel = parsed.channel
    if "://" in value or (
        channel is not None and not channel.base_url.startswith(f"{_DEFAULT_CHANNEL_HOST}{channel.name}/")
    ):
        raise ValueError(
            f"conda match spec {value!r} names a channel by URL or path; envspec.yml names channels "
            "(channels:, or NAME::package), and where a channel is fetched from goes in --mirror NAME=URL "
            "or ENVSPEC_MIRRORS, so lockfiles and environment files never carry a mirror's address"
        )
    return value


def _check_vpkg_value(value: str) -> str:
    if not _VPKG_VALUE.match(value):
        raise ValueError(f"{value!r} is not 'VERSION' or 'VERSION BUILD' (e.g. \"12.9\" or \"1 x86_64\")")
    return value


def _check_pip_requirement(value: str) -> str:
    from packaging.requirements import InvalidRequirement, Requirement

    _no_credentials(value, "pip requirement")
    try:
        req = Requirement(value)
    except InvalidRequirement as exc:
        detail = " ".join(str(exc).split())
        raise ValueError(f"invalid pip requirement {value!r}: {detail}") from None
    if req.url is not None:
        raise ValueError(
            f"pip requirement {value!r} is a direct reference (NAME @ URL); envspec locks PyPI packages from "
            "the index only (write NAME==VERSION, or serve the file from an index: --mirror pypi=URL)"
        )
    return value


def _check_pip_name(value: str) -> str:
    from packaging.utils import InvalidName, canonicalize_name

    try:
        return str(canonicalize_name(value, validate=True))
    except InvalidName:
        raise ValueError(f"{value!r} is not a PyPI project name") from None


def pip_name(requirement: str) -> str:
    """The normalised PyPI name of a (valid) pip requirement: ``Pillow[x]>=10`` -> ``pillow``."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(Requirement(requirement).name))


MatchSpecStr = Annotated[str, StringConstraints(min_length=1), AfterValidator(_check_match_spec)]
VirtualValue = Annotated[str, AfterValidator(_check_vpkg_value)]
PipRequirement = Annotated[str, StringConstraints(min_length=1), AfterValidator(_check_pip_requirement)]
VariableValue = Annotated[str, AfterValidator(lambda v: _no_credentials(v, "variable value"))]
PipName = Annotated[str, AfterValidator(_check_pip_name)]
Name = Annotated[str, StringConstraints(pattern=_NAME, max_length=64)]
#: One GitHub runner label (ubuntu-latest, macos-15-intel, a self-hosted label): no spaces or newlines.
RunnerLabel = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)]
EnvVarName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
#: Words of a variable name that say it holds a secret (HF_TOKEN, AWS_SECRET_ACCESS_KEY, PIP_PASSWORD,
#: OPENAI_API_KEY): refused in envspec.yml whatever its value, which may not look like one. Whole words
#: between underscores: TOKENIZERS_PARALLELISM is no token.
_SECRET_WORDS: Final = frozenset({"TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS", "APIKEY"})
_SECRET_PAIRS: Final = frozenset({("API", "KEY"), ("ACCESS", "KEY"), ("PRIVATE", "KEY"), ("AUTH", "TOKEN")})


def secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret."""
    words = name.upper().split("_")
    return bool(_SECRET_WORDS & set(words)) or any(pair in _SECRET_PAIRS for pair in itertools.pairwise(words))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class TargetDocument(_Strict):
    """One target: everything that differs between platforms, as data."""

    description: str = Field(default="", description="One line for people: what machine this is for.")
    subdir: Subdir = Field(description="conda subdir (CONDA_SUBDIR) the target is solved and installed for.")
    accelerator: Accelerator = Field(description="What torch must run on: cuda, mps or cpu.")
    virtual_packages: dict[str, VirtualValue] = Field(
        description="The target machine's virtual packages, e.g. {__cuda: '12.9', __glibc: '2.28'}. "
        "Passed to the solver instead of conda-lock's defaults.",
    )
    torch: list[MatchSpecStr] = Field(
        min_length=1,
        description="Match specs selecting the torch variant, e.g. ['pytorch=*=cuda*', 'cuda-version=12.9'].",
    )
    packages: list[MatchSpecStr] = Field(default_factory=list, description="Extra conda packages for this target.")
    pip: list[PipRequirement] = Field(
        default_factory=list,
        description="Extra PyPI requirements for this target (PEP 508, markers allowed), locked on top of its "
        "conda packages.",
    )
    variables: dict[EnvVarName, VariableValue] = Field(
        default_factory=dict, description="Environment variables set on activation."
    )
    runner: RunnerLabel = Field(description="GitHub Actions runner label that verifies this target.")
    runner_has_accelerator: bool = Field(
        default=False,
        description="true when `runner` is a (self-hosted) machine with this target's accelerator: CI then "
        "enforces the device promise. GitHub-hosted runners have no NVIDIA GPU and no usable MPS, so by "
        "default CI runs the smoke test there with --allow-cpu and the report says so.",
    )
    smoke_device: Accelerator = Field(description="The torch device the smoke test must see on real hardware.")
    smoke_with_model: bool = Field(
        default=True,
        description="The smoke test uses the pinned smoke model (models:) once it is pulled; false: always the "
        "tiny offline model (a runner that cannot afford a real image).",
    )
    smoke_steps: int | None = Field(
        default=None, ge=1, le=500, description="DDIM steps of the real-model smoke image (default 50, the guide's)."
    )
    smoke_resolution: int | None = Field(
        default=None,
        ge=64,
        le=2048,
        multiple_of=8,
        description="Side of the real-model smoke image in pixels (default 512, the guide's; a multiple of 8).",
    )

    @model_validator(mode="after")
    def _coherent(self) -> TargetDocument:
        family = self.subdir.split("-")[0]
        for name in self.virtual_packages:
            allowed = KNOWN_VIRTUAL_PACKAGES.get(name)
            if allowed is None:
                raise ValueError(
                    f"unknown virtual package {name!r}; expected one of {', '.join(sorted(KNOWN_VIRTUAL_PACKAGES))}"
                )
            if family not in allowed:
                raise ValueError(f"virtual package {name!r} does not exist on {self.subdir}")
        if self.smoke_device not in (self.accelerator, "cpu"):
            raise ValueError(
                f"smoke_device {self.smoke_device!r} cannot be seen on a {self.accelerator!r} target; "
                f"expected {self.accelerator!r} (or 'cpu' to promise less)"
            )
        reserved = sorted(k for k in self.variables if k.startswith(RESERVED_VARIABLE_PREFIX))
        if reserved:
            raise ValueError(
                f"variables: {', '.join(reserved)} is set by envspec itself (names starting with "
                f"{RESERVED_VARIABLE_PREFIX} carry the target and the promised device to the smoke test)"
            )
        secret = sorted(k for k in self.variables if secret_name(k))
        if secret:
            from pydantic_core import PydanticCustomError

            raise PydanticCustomError(
                CREDENTIALS_ERROR,
                "variables: {names} is named like a secret, and envspec.yml must hold no secret (it is committed "
                "and render copies variables into the environment files); its value was not read",
                {"names": ", ".join(secret)},
            )
        rule = ACCELERATOR_RULES[self.accelerator]
        for name in rule.requires_virtual:
            if name not in self.virtual_packages:
                raise ValueError(f"accelerator {self.accelerator!r} needs virtual package {name!r}")
        for name, minimum in rule.min_virtual.items():
            if version_tuple(self.virtual_packages[name].split()[0]) < version_tuple(minimum):
                raise ValueError(f"accelerator {self.accelerator!r} needs {name} >= {minimum}")
        torch_specs = [s for s in self.torch if spec_name(s) == TORCH_PACKAGE]
        if len(torch_specs) != 1:
            raise ValueError(f"torch must contain exactly one '{TORCH_PACKAGE}' match spec")
        if rule.torch_build_prefix is not None:
            build = spec_build(torch_specs[0])
            if build is None or not build.startswith(rule.torch_build_prefix):
                raise ValueError(
                    f"accelerator {self.accelerator!r} needs the {TORCH_PACKAGE} build pinned to "
                    f"'{rule.torch_build_prefix}*' (e.g. '{TORCH_PACKAGE}=*={rule.torch_build_prefix}*'), "
                    "or a CPU build can win the solve"
                )
        for needed in rule.requires_torch_packages:
            if not any(spec_name(s) == needed for s in self.torch):
                raise ValueError(
                    f"accelerator {self.accelerator!r} needs '{needed}' pinned in torch (e.g. '{needed}=12.9')"
                )
        return self


# --- models: Hugging Face models the project pins (envspec.models locks and pulls them) ---------

_HUB_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"


def _check_hub_repo(value: str) -> str:
    if not re.fullmatch(rf"(?:{_HUB_PART}/)?{_HUB_PART}", value, flags=re.ASCII) or "--" in value or ".." in value:
        raise ValueError(
            f"{value!r} is not a Hugging Face repository id ('namespace/name': letters, digits, '-', '_', '.'; "
            "no '--' or '..')"
        )
    return value


def _check_hub_revision(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,254}", value) or ".." in value or value.endswith(("/", ".")):
        raise ValueError(f"{value!r} is not a branch, tag or commit (e.g. 'main', 'v1.0', or 40 hex digits)")
    return value


def _check_repo_path(value: str) -> str:
    """A relative POSIX path (or glob) inside a repository: never absolute, never climbing out."""
    parts = value.split("/")
    if not value or "\\" in value or any(p in ("", ".", "..") for p in parts) or value[0] == "~":
        raise ValueError(f"{value!r} is not a relative path inside the repository (no leading '/', '..' or backslash)")
    return value


HubRepoId = Annotated[str, AfterValidator(_check_hub_repo)]
HubRevision = Annotated[str, AfterValidator(_check_hub_revision)]
RepoPath = Annotated[str, StringConstraints(max_length=500), AfterValidator(_check_repo_path)]
ModelVariant = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,32}$")]


class ModelEntryDocument(_Strict):
    """One model: a Hugging Face repository at a revision, and what to take from it."""

    description: str = Field(default="", description="One line for people: what this model is.")
    repo: HubRepoId = Field(
        description="Hugging Face repository id, e.g. 'stable-diffusion-v1-5/stable-diffusion-v1-5'."
    )
    revision: HubRevision = Field(
        description="Branch, tag or commit. `envspec models lock` pins it to a commit in lockfiles/models.lock.yml."
    )
    layout: Literal["diffusers", "single_file"] = Field(
        description="diffusers: model_index.json, each component folder's config/tokenizer files and its weights "
        "(the variant's, .safetensors preferred); single_file: one checkpoint named by `file`."
    )
    variant: ModelVariant | None = Field(
        default=None, description="diffusers layout: weights variant to take, e.g. fp16 (default: the plain weights)."
    )
    file: RepoPath | None = Field(default=None, description="single_file layout: the checkpoint's path in the repo.")
    include: list[RepoPath] = Field(
        default_factory=list, description="Extra files to take (globs on repository paths, e.g. 'tokenizer/*')."
    )
    exclude: list[RepoPath] = Field(
        default_factory=list,
        description="Files or component folders to leave out (globs on repository paths, e.g. 'safety_checker').",
    )
    license: Annotated[str, StringConstraints(pattern=r"\S")] = Field(
        description="The model's licence, for people (e.g. 'CreativeML OpenRAIL-M'); recorded in the lockfile."
    )
    trust_pickle: bool = Field(
        default=False,
        description="Allow pulling pickled files (.ckpt/.bin/.pt/.pth): loading one can run arbitrary code.",
    )
    smoke: bool = Field(default=False, description="The smoke test uses this model (or set smoke_model: NAME).")

    @model_validator(mode="after")
    def _coherent(self) -> ModelEntryDocument:
        if self.layout == "single_file":
            if self.file is None:
                raise ValueError("layout 'single_file' needs file: (the checkpoint's path in the repository)")
            if self.variant is not None:
                raise ValueError("variant applies to layout 'diffusers' only; a single file is named by file:")
        elif self.file is not None:
            raise ValueError("file applies to layout 'single_file' only; a diffusers folder is taken whole")
        return self


class SpecDocument(_Strict):
    """The whole ``envspec.yml``."""

    version: Literal[1] = Field(description="Format version of envspec.yml.")
    name: Name = Field(description="Base name of the conda environment.")
    channels: list[Name] = Field(min_length=1, description="conda channels, highest priority first.")
    dependencies: list[MatchSpecStr] = Field(min_length=1, description="conda packages common to every target.")
    pip: list[PipRequirement] = Field(
        default_factory=list,
        description="PyPI requirements for every target (PEP 508, markers allowed), for what conda-forge lacks. "
        "conda-lock solves them against each target's conda packages; a requirement a conda package already "
        "provides (torch by pytorch) is not installed again. Locked with sha256 into lockfiles/<target>.pip.txt.",
    )
    pip_allow_sdist: list[PipName] = Field(
        default_factory=list,
        description="PyPI projects that may be locked as a source distribution when no wheel fits a target: only "
        "their build backends run (at lock time for metadata, at install time to build them; may need "
        "a compiler). Any other project without a wheel for a target fails the lock.",
    )
    targets: dict[Name, TargetDocument] = Field(min_length=1, description="One record per platform target.")
    models: dict[Name, ModelEntryDocument] = Field(
        default_factory=dict, description="Hugging Face models to lock and pull into models/<name>/ (docs/models.md)."
    )
    smoke_model: Name | None = Field(default=None, description="The model the smoke test uses (or smoke: true on it).")

    @model_validator(mode="after")
    def _no_duplicate_packages(self) -> SpecDocument:
        common = {spec_name(s): s for s in self.dependencies}
        if len(common) != len(self.dependencies):
            raise ValueError("dependencies name a package twice")
        for tname, target in self.targets.items():
            seen = dict(common)
            for spec in [*target.torch, *target.packages]:
                name = spec_name(spec)
                if name in seen:
                    raise ValueError(f"target {tname!r}: package {name!r} is given twice ({seen[name]!r} and {spec!r})")
                seen[name] = spec
            pip_seen: dict[str, str] = {}
            for req in [*self.pip, *target.pip]:
                name = pip_name(req)
                if name in pip_seen:
                    raise ValueError(
                        f"target {tname!r}: pip package {name!r} is given twice ({pip_seen[name]!r} and {req!r})"
                    )
                pip_seen[name] = req
        return self

    @model_validator(mode="after")
    def _one_smoke_model(self) -> SpecDocument:
        marked = [name for name, entry in self.models.items() if entry.smoke]
        if len(marked) > 1:
            raise ValueError(f"models {', '.join(marked)} all say smoke: true; the smoke test uses one")
        if self.smoke_model is not None:
            if self.smoke_model not in self.models:
                have = ", ".join(self.models) or "none"
                raise ValueError(f"smoke_model {self.smoke_model!r} names no entry of models: (have: {have})")
            if marked and marked[0] != self.smoke_model:
                raise ValueError(
                    f"smoke_model {self.smoke_model!r} and smoke: true on {marked[0]!r} disagree; keep one"
                )
        return self


def spec_name(spec: str) -> str:
    from rattler import MatchSpec

    name = MatchSpec(spec).name
    return str(name.normalized if hasattr(name, "normalized") else name).lower()


def spec_build(spec: str) -> str | None:
    from rattler import MatchSpec

    build = MatchSpec(spec).build
    return None if build is None else str(build)


def json_schema() -> dict[str, Any]:
    """JSON schema of envspec.yml generated from the model (for editors)."""
    schema = SpecDocument.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": "GENERATED by `envspec render` from envspec/spec.py; do not edit.",
        **schema,
        "title": "envspec.yml",  # after pydantic's own title ("SpecDocument"), which would replace it
    }
