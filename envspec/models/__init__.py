"""Models from the Hugging Face Hub: lock them (pin revisions, record sizes and hashes), pull them.

Stage package, between the spec and the smoke test. It imports ``envspec.errors``, ``fsutil``,
``project`` and the spec's types, never the command layer; only ``hub.py`` imports huggingface_hub,
and only when a function here needs the network. See docs/models.md.

- ``lock_models(project, spec, *, check=False, update=False, progress=...) -> ModelsLockSummary``
- ``pull_models(project, spec, name=None, dest=None, *, trust_pickle=False, progress=...) -> list[ModelPullResult]``
- ``models_size(project, names=None, *, missing_only=False, dest=None) -> int``
- ``smoke_model_path(project, spec, dest=None) -> Path | None``, ``smoke_model_name(spec) -> str | None``
"""

from __future__ import annotations

from envspec.models.local import (
    lockfile_path,
    model_dir,
    models_root,
    models_size,
    pulled_model_path,
    smoke_model_name,
    smoke_model_path,
)
from envspec.models.lock import ModelLockResult, ModelsLockSummary, lock_models, stale_entries
from envspec.models.pull import ModelPullResult, PullEvent, pull_document, pull_models

__all__ = [
    "ModelLockResult",
    "ModelPullResult",
    "ModelsLockSummary",
    "PullEvent",
    "lock_models",
    "lockfile_path",
    "model_dir",
    "models_root",
    "models_size",
    "pull_document",
    "pull_models",
    "pulled_model_path",
    "smoke_model_name",
    "smoke_model_path",
    "stale_entries",
]
