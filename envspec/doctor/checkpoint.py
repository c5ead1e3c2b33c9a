"""The old Stable Diffusion guide's checkpoint: where it goes, how big a real one is, and whether the
file there looks like one (a git-lfs pointer or a broken download does not).
"""

from __future__ import annotations

from typing import Final

from envspec.doctor.check import Check, Status

#: The checkpoint path of the old Stable Diffusion guide (relative to the project root).
CHECKPOINT_RELPATH: Final = "models/ldm/stable-diffusion-v1/model.ckpt"
#: sd-v1-4.ckpt / v1-5-pruned-emaonly.ckpt are ~4.27 GB.
CHECKPOINT_BYTES: Final = 4_265_380_512
#: Anything smaller is not an SD-1 checkpoint (a git-lfs pointer is ~130 bytes).
CHECKPOINT_SUSPICIOUS_BELOW: Final = 1_000_000_000


def check_checkpoint(path: str, size: int | None) -> Check:
    """The file at ``path`` (the project's CHECKPOINT_RELPATH) of ``size`` bytes, ``None`` when absent."""
    if size is None:
        return Check(
            "checkpoint",
            Status.PASS,
            f"no checkpoint at {path}: the smoke test uses its tiny built-in model (--model PATH for a real one)",
        )
    if size < CHECKPOINT_SUSPICIOUS_BELOW:
        return Check(
            "checkpoint",
            Status.WARN,
            f"{path} is only {size / 1e6:.1f} MB; a real SD-1 checkpoint is ~4.3 GB (a broken download or a "
            "git-lfs pointer?)",
            "download the checkpoint again",
        )
    return Check(
        "checkpoint",
        Status.PASS,
        f"{path} ({size / 1e9:.2f} GB); a .ckpt is a pickle: the smoke test loads it only with --trust-pickle",
    )
