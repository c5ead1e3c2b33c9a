"""``envspec init``: a starting ``envspec.yml`` for a new project, from the template envspec ships.

The text is ``templates/init/envspec.yml.j2`` (the same spec as envspec's own repository, commented for
a new project) with the project's name: the folder's name made a valid conda name. It is written only
where no file exists: a temp file in the same folder, then ``os.link`` (which fails when the name is
taken), so neither a second ``init`` nor a race ever replaces a spec somebody wrote.
"""

from __future__ import annotations

import re
from pathlib import Path

from envspec.errors import EnvspecError, ExitCode
from envspec.fsutil import atomic_create_bytes
from envspec.render.context import make_environment

INIT_TEMPLATE = "init/envspec.yml.j2"
DEFAULT_NAME = "stable-diffusion"


class SpecExists(EnvspecError):
    """``envspec init`` where an ``envspec.yml`` already is: a usage error (exit 2); nothing written."""

    exit_code = ExitCode.USAGE


def project_name(folder: Path) -> str:
    """The folder's name as a conda environment name (``My SD Project`` -> ``my-sd-project``)."""
    name = re.sub(r"[^a-z0-9._-]+", "-", folder.name.lower()).strip("-._")[:48]
    return name or DEFAULT_NAME


def starting_spec(name: str) -> str:
    """The text ``envspec init`` writes (pure: envspec's own template)."""
    return make_environment().get_template(INIT_TEMPLATE).render(name=name)


def write_new_spec(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless something is there already (``SpecExists``)."""
    if path.exists() or path.is_symlink():
        raise _exists(path)
    try:
        atomic_create_bytes(path, text.encode("utf-8"))
    except FileExistsError:
        raise _exists(path) from None


def _exists(path: Path) -> SpecExists:
    return SpecExists(
        f"{path} already exists; envspec init writes a new spec only where there is none",
        tip="edit it and run `envspec render`, or run `envspec init` in an empty folder (or with --spec NEW_PATH)",
    )
