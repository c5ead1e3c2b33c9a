"""smoke/checks.py pinned down: each check's name, verdict and detail text, at the thresholds.

No torch needed: params_placed gets stand-in tensors with the three attributes it reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from envspec.smoke import checks
from envspec.smoke.checks import Check

np = pytest.importorskip("numpy")


@dataclass
class _Device:
    type: str


@dataclass
class _Tensor:
    device: _Device
    dtype: str
    floating: bool = True

    def is_floating_point(self) -> bool:
        return self.floating


def _t(device: str, dtype: str, floating: bool = True) -> _Tensor:
    return _Tensor(_Device(device), f"torch.{dtype}", floating)


def test_thresholds() -> None:
    assert (checks.MIN_STD, checks.MIN_DISTINCT) == (0.01, 16)


def test_check_as_dict() -> None:
    assert Check("n", True, "d").as_dict() == {"name": "n", "passed": True, "detail": "d"}


def test_finite_verdict_and_detail() -> None:
    assert checks.finite(np.zeros((2, 3))) == Check("finite", True, "all 6 output values finite")
    bad = np.array([1.0, np.nan, np.inf, -np.inf])
    assert checks.finite(bad) == Check("finite", False, "3 of 4 output values are NaN or inf")


def test_shape_verdict_and_detail() -> None:
    assert checks.shape(np.zeros((1, 8, 8)), [1, 8, 8]) == Check("shape", True, "output shape (1, 8, 8)")
    assert checks.shape(np.zeros((1, 8, 8)), (1, 8, 9)) == Check(
        "shape", False, "output shape (1, 8, 8), expected (1, 8, 9)"
    )


def test_not_blank_at_the_thresholds() -> None:
    flat = np.full((4, 4, 3), 7, dtype=np.uint8)
    assert checks.not_blank(flat) == Check("not_blank", False, "std 0.0000 (min 0.01), 1 distinct values (min 16)")
    ramp = np.arange(16, dtype=np.uint8).reshape(4, 4)  # 16 distinct values, std about 0.018
    assert checks.not_blank(ramp).passed
    assert checks.not_blank(ramp).detail == "std 0.0181 (min 0.01), 16 distinct values (min 16)"
    fifteen = np.arange(15, dtype=np.uint8)  # std fine, one distinct value short
    assert not checks.not_blank(fifteen).passed
    two = np.array([0, 255] * 8 + list(range(1, 15)), dtype=np.uint8)
    assert checks.not_blank(two).passed
    narrow = np.array([100 + i for i in range(16)] + [100] * 2000, dtype=np.uint8)
    assert not checks.not_blank(narrow).passed  # 16 distinct values but almost no spread


def test_not_loaded_messages() -> None:
    messages = [
        "Some weights of the model checkpoint were not used when initializing CLIPTextModel:\n  [a, b]",
        "Some weights were Newly Initialised: x",
        "missing keys: x",
        "Unexpected keys in state dict",
        "size mismatch for w",
        "| MISSING | w |",
        "UNEXPECTED",
        "MISMATCH here",
        "the weights were not initialized from the checkpoint",
        "mismatched shapes are fine words",  # lowercase status words are not table entries
        "MISSINGNO",  # not a whole word
        "all good",
    ]
    assert checks.not_loaded_messages(messages) == [
        "Some weights of the model checkpoint were not used when initializing CLIPTextModel: [a, b]",
        *messages[1:9],
    ]


def test_weights_loaded_verdict_and_detail() -> None:
    assert checks.weights_loaded([], ["unet", "vae"]) == Check(
        "weights_loaded", True, "no missing/unexpected weights in unet, vae"
    )
    got = checks.weights_loaded(["missing keys: a"], ["unet"], on_meta=["p1", "p2", "p3", "p4", "p5"], missing=["m1"])
    assert got == Check(
        "weights_loaded", False, "3 load problem(s): 5 parameter(s) have no data (meta device): p1, p2, p3 (+2 more)"
    )
    got = checks.weights_loaded([], ["unet"], missing=["m1", "m2", "m3"])
    assert got.detail == "1 load problem(s): 3 weight(s) missing from the checkpoint: m1, m2, m3"
    got = checks.weights_loaded([], ["unet"], missing=["m1", "m2", "m3", "m4"])
    assert got.detail == "1 load problem(s): 4 weight(s) missing from the checkpoint: m1, m2, m3 (+1 more)"
    got = checks.weights_loaded(["missing keys: a"], ["unet"], missing=["m1"])
    assert got.detail == "2 load problem(s): 1 weight(s) missing from the checkpoint: m1"
    got = checks.weights_loaded([], ["unet"], on_meta=["a", "b", "c", "d"])
    assert got.detail == "1 load problem(s): 4 parameter(s) have no data (meta device): a, b, c (+1 more)"
    got = checks.weights_loaded([], ["unet"], on_meta=["a", "b", "c"])
    assert got.detail == "1 load problem(s): 3 parameter(s) have no data (meta device): a, b, c"


def test_weights_loaded_cuts_a_long_first_problem_at_300() -> None:
    exactly = "missing keys: " + "k" * 286
    assert checks.weights_loaded([exactly], ["unet"]).detail == f"1 load problem(s): {exactly}"
    longer = exactly + "X"
    assert checks.weights_loaded([longer], ["unet"]).detail == f"1 load problem(s): {longer[:297]}..."


def test_params_placed_verdict_and_detail() -> None:
    good = [("a", _t("cuda", "float16")), ("idx", _t("cuda", "int64", floating=False))]
    assert checks.params_placed(good, "cuda", "float16") == Check(
        "params_device_dtype", True, "all 2 parameters on cuda as float16"
    )
    assert checks.params_placed([], "cpu", "float32") == Check("params_device_dtype", False, "no parameters found")
    wrong = [(f"w{i}", _t("cpu", "float32")) for i in range(3)]
    assert checks.params_placed(wrong, "cuda", "float16").detail == (
        "3 of 3 parameters not on cuda/float16: w0 on cpu as float32; w1 on cpu as float32; w2 on cpu as float32"
    )
    four = [*wrong, ("w3", _t("cuda", "float32"))]
    assert checks.params_placed(four, "cuda", "float16").detail.endswith("w2 on cpu as float32 (+1 more)")
    many = [*good, *wrong, ("w3", _t("cuda", "float32")), ("w4", _t("mps", "float16", floating=False))]
    assert checks.params_placed(many, "cuda", "float16") == Check(
        "params_device_dtype",
        False,
        "5 of 7 parameters not on cuda/float16: w0 on cpu as float32; w1 on cpu as float32; w2 on cpu as float32"
        " (+2 more)",
    )


def test_repeatable_verdict_and_detail() -> None:
    a = np.zeros((2, 2), dtype=np.uint8)
    assert checks.repeatable(a, None, "cuda") == Check(
        "repeatable", True, "skipped on cuda: identical pixels are only required on cpu"
    )
    assert checks.repeatable(a, a.copy(), "cpu") == Check(
        "repeatable", True, "repeat run with the same seed gave identical pixels on cpu"
    )
    b = a.copy()
    b[0, 1] = 1
    assert checks.repeatable(a, b, "cpu") == Check("repeatable", False, "1 of 4 pixel values differ on a repeat run")
    assert checks.repeatable(a, np.zeros((3,), dtype=np.uint8), "cpu") == Check(
        "repeatable", False, "repeat run shape (3,) != (2, 2)"
    )


def test_tokenizer_works_verdict_and_detail() -> None:
    assert checks.tokenizer_works([0, 5, 6, 1], [0, 1, None], 7) == Check(
        "tokenizer", True, "prompt -> 2 tokens, all within 7 embeddings"
    )
    assert checks.tokenizer_works([0, 1, 1, 1, 1, 1, 1, 1, 1, 1], [0, 1], 10) == Check(
        "tokenizer",
        False,
        "the prompt encodes to special tokens only ([0, 1, 1, 1, 1, 1, 1, 1]...): the tokenizer has no vocabulary",
    )
    assert checks.tokenizer_works([0, 5, 7, 8, 9, 10, 11, 12], [0], 7) == Check(
        "tokenizer", False, "token ids [7, 8, 9, 10, 11] beyond the text encoder's 7 embeddings"
    )
