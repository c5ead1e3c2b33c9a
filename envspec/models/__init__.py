"""Stage 4 of 8, models: Hugging Face Hub models locked (revisions pinned, sizes and hashes recorded) and pulled.

Stage package, between the spec and the smoke test. It imports ``envspec.errors``, ``fsutil``,
``project`` and the spec's types, never the command layer; only ``hub.py`` imports huggingface_hub,
and only when a function here needs the network. See docs/models.md.

- ``lock_models(project, spec, *, check=False, update=False, progress=...) -> ModelsLockSummary``
- ``pull_models(project, spec, name=None, dest=None, options=PullOptions(), *, progress=...) -> list[ModelPullResult]``
- ``models_size(project, names=None, *, missing_only=False, dest=None) -> int``
- ``smoke_model_path(project, spec, dest=None) -> Path | None``, ``smoke_model_name(spec) -> str | None``

The stage's surface: ``__all__`` (see ``envspec.lazy_surface``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envspec.models.local import LOCKFILE as MODELS_LOCKFILE
    from envspec.models.local import Manifest as Manifest
    from envspec.models.local import ManifestFile as ManifestFile
    from envspec.models.local import lockfile_path as lockfile_path
    from envspec.models.local import model_dir as model_dir
    from envspec.models.local import models_size as models_size
    from envspec.models.local import pulled_model_path as pulled_model_path
    from envspec.models.local import read_lock as read_models_lock
    from envspec.models.local import smoke_model_name as smoke_model_name
    from envspec.models.local import smoke_model_path as smoke_model_path
    from envspec.models.local import write_manifest as write_manifest
    from envspec.models.lock import ModelLockResult as ModelLockResult
    from envspec.models.lock import ModelsLockSummary as ModelsLockSummary
    from envspec.models.lock import lock_models as lock_models
    from envspec.models.lock import stale_entries as stale_entries
    from envspec.models.lockfile import LockedFile as LockedFile
    from envspec.models.lockfile import LockedModel as LockedModel
    from envspec.models.progress import PullProgress as PullProgress
    from envspec.models.pull import ModelPullResult as ModelPullResult
    from envspec.models.pull import PullEvent as PullEvent
    from envspec.models.pull import PullOptions as PullOptions
    from envspec.models.pull import file_digest as file_digest
    from envspec.models.pull import pull_document as pull_document
    from envspec.models.pull import pull_models as pull_models
else:
    from envspec import lazy_surface

    __getattr__, __dir__ = lazy_surface(
        __name__,
        {
            "LockedFile": "lockfile",
            "LockedModel": "lockfile",
            "MODELS_LOCKFILE": "local:LOCKFILE",
            "Manifest": "local",
            "ManifestFile": "local",
            "ModelLockResult": "lock",
            "ModelPullResult": "pull",
            "ModelsLockSummary": "lock",
            "PullEvent": "pull",
            "PullOptions": "pull",
            "PullProgress": "progress",
            "file_digest": "pull",
            "lock_models": "lock",
            "lockfile_path": "local",
            "model_dir": "local",
            "models_size": "local",
            "pull_document": "pull",
            "pull_models": "pull",
            "pulled_model_path": "local",
            "read_models_lock": "local:read_lock",
            "smoke_model_name": "local",
            "smoke_model_path": "local",
            "stale_entries": "lock",
            "write_manifest": "local",
        },
    )

__all__ = [
    "MODELS_LOCKFILE",
    "LockedFile",
    "LockedModel",
    "Manifest",
    "ManifestFile",
    "ModelLockResult",
    "ModelPullResult",
    "ModelsLockSummary",
    "PullEvent",
    "PullOptions",
    "PullProgress",
    "file_digest",
    "lock_models",
    "lockfile_path",
    "model_dir",
    "models_size",
    "pull_document",
    "pull_models",
    "pulled_model_path",
    "read_models_lock",
    "smoke_model_name",
    "smoke_model_path",
    "stale_entries",
    "write_manifest",
]
