"""Each check on its own: passes on good input, fails when its condition is broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from envspec.smoke import checks

np = pytest.importorskip("numpy")

# Messages as diffusers 0.42 and transformers 5.x log them when a weight is missing.
DIFFUSERS_MISSING = (
    "Some weights of UNet2DConditionModel were not initialized from the model checkpoint at /m/unet and are "
    "newly initialized: ['conv_out.weight']\nYou should probably TRAIN this model on a down-stream task"
)
TRANSFORMERS_REPORT = (
    "\x1b[1mCLIPTextModel LOAD REPORT\x1b[0m from: /m/text_encoder\nKey | Status |\n"
    "encoder.layers.0.layer_norm2.weight | MISSING |\n\nNotes:\n- MISSING:\tthose params were newly initialized"
)
HARMLESS = "Cannot initialize model with low cpu memory usage because `accelerate` was not found"


def test_finite() -> None:
    good = np.full((1, 8, 8, 3), 0.5, dtype=np.float32)
    assert checks.finite(good).passed
    bad = good.copy()
    bad[0, 0, 0, 0] = np.nan
    bad[0, 1, 0, 0] = np.inf
    result = checks.finite(bad)
    assert not result.passed and result.detail.startswith("2 of 192")


def test_shape() -> None:
    image = np.zeros((1, 64, 32, 3))
    assert checks.shape(image, (1, 64, 32, 3)).passed
    assert not checks.shape(image, (1, 64, 64, 3)).passed


def test_not_blank() -> None:
    rng = np.random.default_rng(0)
    assert checks.not_blank(rng.integers(0, 256, (1, 16, 16, 3), dtype=np.uint8)).passed
    assert not checks.not_blank(np.zeros((1, 16, 16, 3), dtype=np.uint8)).passed  # NaN -> black PNG
    assert not checks.not_blank(np.full((1, 16, 16, 3), 128, dtype=np.uint8)).passed
    few = np.tile(np.array([0, 255] * 8, dtype=np.uint8), (1, 16, 1)).reshape(1, 16, 16, 1)
    assert not checks.not_blank(few).passed  # high std but only 2 values


def test_weights_loaded_catches_both_libraries_and_ignores_other_warnings() -> None:
    assert checks.weights_loaded([HARMLESS], ["unet"]).passed
    for message in (DIFFUSERS_MISSING, TRANSFORMERS_REPORT, "Some weights of X were not used when initializing Y"):
        result = checks.weights_loaded([HARMLESS, message], ["unet"])
        assert not result.passed, message
        assert "1 load problem" in result.detail
    meta = checks.weights_loaded([], ["unet"], on_meta=["unet.conv_out.weight"])
    assert not meta.passed and "unet.conv_out.weight" in meta.detail


def test_params_placed() -> None:
    torch = pytest.importorskip("torch")
    params = [("a", torch.zeros(2)), ("b", torch.zeros(2, dtype=torch.int64))]
    assert checks.params_placed(params, "cpu", "float32").passed
    result = checks.params_placed([*params, ("c", torch.zeros(2, dtype=torch.float16))], "cpu", "float32")
    assert not result.passed and "c on cpu as float16" in result.detail
    assert not checks.params_placed(params, "cuda", "float32").passed
    assert not checks.params_placed([], "cpu", "float32").passed


def test_repeatable() -> None:
    first = np.zeros((1, 4, 4, 3), dtype=np.uint8)
    assert checks.repeatable(first, first.copy(), "cpu").passed
    other = first.copy()
    other[0, 0, 0, 0] = 1
    assert not checks.repeatable(first, other, "cpu").passed
    skipped = checks.repeatable(first, None, "cuda")
    assert skipped.passed and "skipped" in skipped.detail


def test_tokenizer_works() -> None:
    assert checks.tokenizer_works([0, 17, 99, 2], [0, 2, 2, None], vocab_size=1000).passed
    empty = checks.tokenizer_works([0, 2, 2, 2], [0, 2, 2, None], vocab_size=1000)  # transformers 5, no files
    assert not empty.passed and "special tokens only" in empty.detail
    assert not checks.tokenizer_works([0, 1500, 2], [0, 2], vocab_size=1000).passed


def test_a_run_without_an_image_removes_the_previous_runs_png(tmp_path: Path) -> None:
    import json

    from envspec.smoke.report import IMAGE_FILE, REPORT_FILE, empty_report, write_report

    passed = empty_report("linux-cuda", "tiny", 0, False)
    write_report(tmp_path, passed, b"\x89PNG old picture")
    assert (tmp_path / IMAGE_FILE).is_file()
    errored = empty_report("linux-cuda", "tiny", 0, False)
    errored["message"] = "error: no such model"
    write_report(tmp_path, errored, None)
    assert not (tmp_path / IMAGE_FILE).exists()  # the old picture must not stand beside the new verdict
    assert json.loads((tmp_path / REPORT_FILE).read_text())["message"] == "error: no such model"


def test_irrelevant_library_notices_are_dropped_and_others_kept(caplog: pytest.LogCaptureFixture) -> None:
    """transformers' 'requires torchvision (not installed)' notice printed twice per smoke run."""
    import logging

    from envspec.smoke.capture import drop_irrelevant_notices

    drop_irrelevant_notices()
    drop_irrelevant_notices()  # idempotent: one filter
    logger = logging.getLogger("transformers.utils.import_utils")
    assert len(logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger="transformers.utils.import_utils"):
        logger.warning("`CLIPImageProcessor` requires torchvision (not installed); falling back to ...")
        logger.warning("some other notice")
    assert [r.getMessage() for r in caplog.records] == ["some other notice"]
