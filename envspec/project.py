"""Where everything lives in a project checkout. One place for every path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPEC_FILE = "envspec.yml"
SCHEMA_FILE = "envspec.schema.json"


@dataclass(frozen=True)
class Project:
    root: Path

    @classmethod
    def from_spec_path(cls, spec_path: Path) -> Project:
        return cls(root=spec_path.resolve().parent)

    @property
    def spec_path(self) -> Path:
        return self.root / SPEC_FILE

    @property
    def schema_path(self) -> Path:
        return self.root / SCHEMA_FILE

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def lock_dir(self) -> Path:
        return self.root / "lockfiles"

    @property
    def ci_dir(self) -> Path:
        return self.root / "ci"

    @property
    def workflows_dir(self) -> Path:
        return self.root / ".github" / "workflows"

    @property
    def cache_dir(self) -> Path:
        return self.root / ".envspec-cache"

    def env_file(self, target: str) -> Path:
        return self.root / f"environment-{target}.yml"

    def vpkg_file(self, target: str) -> Path:
        return self.lock_dir / f"{target}.virtual-packages.yml"

    def conda_lock_file(self, target: str) -> Path:
        return self.lock_dir / f"{target}.conda-lock.yml"

    def explicit_file(self, target: str) -> Path:
        return self.lock_dir / f"{target}.lock"

    def relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)
