"""The demo model's inference-side definitions: null caption, settings, intrinsics, default action."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch

from sana_wm.camera import action_to_c2w
from sana_wm.errors import InputError
from sana_wm.inference import GenerationRequest, SamplingSettings
from sana_wm.inference.demo_model import (
    DEFAULT_ACTION,
    DEMO_SETTINGS,
    NULL_TEXT_TOKENS,
    PROMPT_NOTE,
    DemoSettings,
    NullTextEncoder,
    centred_intrinsics,
    demo_available,
    load_demo_pipeline,
    null_text,
)


def test_null_text_is_zero_features_with_every_token_real() -> None:
    text, mask = null_text(8, batch=3)
    assert text.shape == (3, NULL_TEXT_TOKENS, 8) and text.dtype == torch.float32
    assert float(text.abs().sum()) == 0.0
    assert mask.dtype == torch.int64 and mask.tolist() == [[1] * NULL_TEXT_TOKENS] * 3


def test_null_encoder_gives_the_training_caption_for_any_prompt(caplog: pytest.LogCaptureFixture) -> None:
    encoder = NullTextEncoder(8)
    with caplog.at_level(logging.WARNING, logger="sana_wm"):
        empty, empty_mask = encoder.encode([""], use_chi_prompt=True)
        assert not caplog.records
        text, mask = encoder.encode(["a red car", "x"], use_chi_prompt=True, max_length=300)
        encoder.encode(["again"], use_chi_prompt=True)
    expected, expected_mask = null_text(8, 2)
    assert torch.equal(text, expected) and torch.equal(mask, expected_mask)
    assert torch.equal(empty, expected[:1]) and torch.equal(empty_mask, expected_mask[:1])
    assert [r.getMessage() for r in caplog.records] == [PROMPT_NOTE]  # once, not per call
    pair, pair_mask = encoder.encode_for_cfg("a prompt", "a negative")
    assert torch.equal(pair, null_text(8, 2)[0]) and pair_mask.tolist() == [[1], [1]]
    with pytest.raises(InputError, match="prompt"):
        encoder.encode([], use_chi_prompt=True)


def test_default_action_covers_exactly_the_demo_frames() -> None:
    c2w = action_to_c2w(DEFAULT_ACTION, mapping=DEMO_SETTINGS.action_mapping)
    assert len(c2w) == DEMO_SETTINGS.num_frames == 81
    assert (DEMO_SETTINGS.num_frames - 1) % 8 == 0
    # 16 frames forward at 0.05 m, then 32 turning left and 32 turning right at 1.2 deg per frame (v1).
    yaw_deg = np.degrees(np.arctan2(c2w[:, 0, 2], c2w[:, 2, 2]))
    assert yaw_deg[16] == pytest.approx(0.0, abs=1e-5)
    assert yaw_deg[48] == pytest.approx(-32 * 1.2, abs=1e-3)
    assert yaw_deg[80] == pytest.approx(0.0, abs=1e-3)


def test_demo_size_is_the_release_aspect_on_the_vae_grid() -> None:
    s = DEMO_SETTINGS
    assert s.height % 32 == 0 and s.width % 32 == 0
    assert abs(s.height / s.width - 704 / 1280) / (704 / 1280) < 0.01
    assert s.cfg_scale == 1.0


def test_centred_intrinsics_hand_values() -> None:
    fx, fy, cx, cy = centred_intrinsics(192, 352, 70.0)
    assert fx == fy == pytest.approx(176.0 / math.tan(math.radians(35.0)), rel=1e-6)  # 251.353...
    assert fx == pytest.approx(251.3535, abs=1e-3)
    assert (cx, cy) == (176.0, 96.0)


def test_settings_round_trip_and_reject_unknown_keys() -> None:
    s = DemoSettings(height=64, width=96, intrinsics=(1.0, 2.0, 3.0, 4.0))
    data = s.to_dict()
    data["intrinsics"] = list(data["intrinsics"])  # as JSON gives it back
    assert DemoSettings.from_dict(data) == s
    np.testing.assert_array_equal(s.intrinsics_array(), np.array([1, 2, 3, 4], np.float32))
    assert s.sampling(seed=7) == SamplingSettings(
        num_frames=81,
        steps=30,
        cfg_scale=1.0,
        flow_shift=3.0,
        sampler="ltx_euler",
        seed=7,
        height=64,
        width=96,
    )
    with pytest.raises(InputError, match="colour"):
        DemoSettings.from_dict({**data, "colour": 1})
    with pytest.raises(InputError, match="intrinsics"):
        DemoSettings().intrinsics_array()


def test_missing_demo_files_are_one_input_error(tmp_path) -> None:
    assert not demo_available(tmp_path)
    with pytest.raises(InputError, match="does not hold the trained demo model"):
        load_demo_pipeline("cpu", directory=tmp_path)


def test_bundled_model_loads_and_reproduces_its_first_frame() -> None:
    """The shipped weights are complete and sane: a short run from the bundled frame starts at that frame
    (frame 0 is the VAE's reconstruction: ~19 dB in the model card) and the settings match the card."""
    from sana_wm.inference.demo_model import DEMO_DIR, demo_first_frame, read_demo_settings

    assert demo_available(DEMO_DIR)
    settings = read_demo_settings()
    assert (settings.height, settings.width, settings.num_frames) == (192, 352, 81)
    pipe = load_demo_pipeline("cpu")
    image = demo_first_frame()
    out = pipe(
        GenerationRequest.create(
            image,
            "",
            action="w-8",
            intrinsics=settings.intrinsics_array(),
            num_frames=9,
            steps=2,
            cfg_scale=1.0,
            flow_shift=settings.flow_shift,
            height=settings.height,
            width=settings.width,
        ),
        progress=False,
    ).frames.numpy()
    assert out.shape == (9, 192, 352, 3)
    first = np.asarray(image, dtype=np.float64)
    mse = np.mean((out[0].astype(np.float64) - first) ** 2)
    assert 10 * np.log10(255.0**2 / mse) > 17.0
