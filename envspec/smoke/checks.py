"""The smoke test's checks: pure functions over arrays, parameters and captured log lines.

Each returns a :class:`Check`; none raises. A check that cannot pass explains why in ``detail``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# An image whose 8-bit pixels have less spread or fewer distinct values than this is "blank".
MIN_STD: Final = 0.01  # on the 0..1 scale (a black or flat image has 0)
MIN_DISTINCT: Final = 16  # distinct 8-bit values over all channels (a flat image has 1)

# Load warnings of diffusers and transformers that mean weights were not loaded: phrases (any case)
# and the all-caps status words of transformers' LOAD REPORT table.
_NOT_LOADED_PHRASES: Final = re.compile(
    r"newly initiali[sz]ed|were not initiali[sz]ed|were not used when initiali[sz]ing"
    r"|missing keys|unexpected keys|size mismatch",
    re.IGNORECASE,
)
_NOT_LOADED_STATUS: Final = re.compile(r"\b(?:MISSING|UNEXPECTED|MISMATCH)\b")


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def finite(image: npt.NDArray[np.floating[Any]]) -> Check:
    import numpy as np

    bad = int(image.size - np.isfinite(image).sum())
    if bad:
        return Check("finite", False, f"{bad} of {image.size} output values are NaN or inf")
    return Check("finite", True, f"all {image.size} output values finite")


def shape(image: npt.NDArray[Any], expected: Sequence[int]) -> Check:
    got = tuple(int(n) for n in image.shape)
    want = tuple(int(n) for n in expected)
    if got != want:
        return Check("shape", False, f"output shape {got}, expected {want}")
    return Check("shape", True, f"output shape {got}")


def not_blank(pixels: npt.NDArray[np.uint8]) -> Check:
    """On the 8-bit image actually written (NaN output becomes a black PNG)."""
    import numpy as np

    std = float(pixels.astype(np.float64).std() / 255.0)
    distinct = int(np.unique(pixels).size)
    detail = f"std {std:.4f} (min {MIN_STD}), {distinct} distinct values (min {MIN_DISTINCT})"
    return Check("not_blank", std >= MIN_STD and distinct >= MIN_DISTINCT, detail)


def not_loaded_messages(messages: Iterable[str]) -> list[str]:
    """The load-log messages that say a weight was missing, unexpected or newly initialised."""
    return [
        " ".join(message.split())
        for message in messages
        if _NOT_LOADED_PHRASES.search(message) or _NOT_LOADED_STATUS.search(message)
    ]


def weights_loaded(
    messages: Iterable[str], components: Sequence[str], on_meta: Sequence[str] = (), missing: Sequence[str] = ()
) -> Check:
    """No load warning about missing/unexpected weights, and no parameter left without data.

    With accelerate installed, diffusers leaves a missing weight on the ``meta`` device (no data)
    instead of initialising it randomly: ``on_meta`` names those parameters. ``missing`` names
    weights a single-file checkpoint lacks (found before loading, since that path never warns).
    """
    bad = not_loaded_messages(messages)
    if missing:
        more = f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""
        bad.insert(0, f"{len(missing)} weight(s) missing from the checkpoint: {', '.join(missing[:3])}{more}")
    if on_meta:
        more = f" (+{len(on_meta) - 3} more)" if len(on_meta) > 3 else ""
        bad.insert(0, f"{len(on_meta)} parameter(s) have no data (meta device): {', '.join(on_meta[:3])}{more}")
    if bad:
        first = bad[0] if len(bad[0]) <= 300 else bad[0][:297] + "..."
        return Check("weights_loaded", False, f"{len(bad)} load problem(s): {first}")
    return Check("weights_loaded", True, f"no missing/unexpected weights in {', '.join(components)}")


def params_placed(params: Iterable[tuple[str, Any]], device: str, dtype: str) -> Check:
    """Every floating-point parameter lives on ``device`` (type) with ``dtype`` (e.g. 'float16')."""
    total = 0
    wrong: list[str] = []
    for name, tensor in params:
        total += 1
        on = tensor.device.type
        kind = str(tensor.dtype).removeprefix("torch.")
        if on != device or (tensor.is_floating_point() and kind != dtype):
            wrong.append(f"{name} on {on} as {kind}")
    if not total:
        return Check("params_device_dtype", False, "no parameters found")
    if wrong:
        more = f" (+{len(wrong) - 3} more)" if len(wrong) > 3 else ""
        return Check(
            "params_device_dtype",
            False,
            f"{len(wrong)} of {total} parameters not on {device}/{dtype}: {'; '.join(wrong[:3])}{more}",
        )
    return Check("params_device_dtype", True, f"all {total} parameters on {device} as {dtype}")


def repeatable(first: npt.NDArray[np.uint8], second: npt.NDArray[np.uint8] | None, device: str) -> Check:

    if second is None:
        return Check("repeatable", True, f"skipped on {device}: identical pixels are only required on cpu")
    if first.shape != second.shape:
        return Check("repeatable", False, f"repeat run shape {second.shape} != {first.shape}")
    differ = int((first != second).sum())
    if differ:
        return Check("repeatable", False, f"{differ} of {first.size} pixel values differ on a repeat run")
    return Check("repeatable", True, f"repeat run with the same seed gave identical pixels on {device}")


def tokenizer_works(ids: Sequence[int], special_ids: Iterable[int | None], vocab_size: int) -> Check:
    """The prompt encodes to real tokens the text encoder knows.

    transformers 5 quietly returns an empty tokenizer (special tokens only) when its files are
    missing: every prompt then becomes end-of-text tokens and the image ignores the prompt.
    """
    specials = {i for i in special_ids if i is not None}
    words = [i for i in ids if i not in specials]
    if not words:
        return Check(
            "tokenizer",
            False,
            f"the prompt encodes to special tokens only ({list(ids)[:8]}...): the tokenizer has no vocabulary",
        )
    beyond = [i for i in ids if i >= vocab_size]
    if beyond:
        return Check("tokenizer", False, f"token ids {beyond[:5]} beyond the text encoder's {vocab_size} embeddings")
    return Check("tokenizer", True, f"prompt -> {len(words)} tokens, all within {vocab_size} embeddings")
