"""3D RoPE tables and rotations: diffusers oracle, hand-derived angles, backends, inverse rotation."""

from __future__ import annotations

import math

import pytest
import torch

from sana_wm.ops.rope import apply_rope, axis_pairs, camera_rope_tables, rope_tables


def test_axis_split_of_the_release_head() -> None:
    assert axis_pairs(112) == (20, 18, 18)
    assert axis_pairs(56) == (10, 9, 9)


def test_tables_match_diffusers_oracle() -> None:
    from diffusers.models.transformers.transformer_sana_wm import SanaWMRotaryPosEmbed, _slice_rope_for_cam

    grid = (5, 4, 6)
    expected = SanaWMRotaryPosEmbed(112, (1, 1, 1), max_seq_len=1024)(grid)[0, 0]
    cos, sin = rope_tables(*grid, 112)
    assert torch.allclose(cos, expected.real, atol=1e-6) and torch.allclose(sin, expected.imag, atol=1e-6)
    cam_cos, cam_sin = camera_rope_tables(cos, sin, 112)
    cam_expected = _slice_rope_for_cam(expected, 112, 56)
    assert cam_cos.shape == (120, 28)
    assert torch.allclose(cam_cos, cam_expected.real, atol=1e-6)
    assert torch.allclose(cam_sin, cam_expected.imag, atol=1e-6)


def test_hand_derived_angles() -> None:
    """Pair 0 of every axis has frequency 1; pair 1 of the 8-channel temporal axis (E = 24) 10000^(-2/8)."""
    cos, sin = rope_tables(3, 2, 2, 24)  # pairs: 4 temporal, 4 height, 4 width
    angles = torch.atan2(sin, cos)
    token = 2 * 4 + 1 * 2 + 1  # frame 2, row 1, column 1
    assert angles[token, 0].item() == pytest.approx(2.0, abs=1e-6)
    assert angles[token, 1].item() == pytest.approx(2.0 * 10000 ** (-2 / 8), abs=1e-6)
    assert angles[token, 4].item() == pytest.approx(1.0, abs=1e-6)
    assert angles[token, 8].item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_rotation_of_a_unit_pair_and_its_inverse(backend: str) -> None:
    cos, sin = rope_tables(2, 1, 1, 12)
    x = torch.zeros(1, 1, 2, 12)
    x[..., 0] = 1.0  # pair 0 = (1, 0)
    rotated = apply_rope(x, cos, sin, backend=backend)
    assert rotated[0, 0, 1, 0].item() == pytest.approx(math.cos(1.0), abs=1e-6)
    assert rotated[0, 0, 1, 1].item() == pytest.approx(math.sin(1.0), abs=1e-6)
    assert torch.allclose(rotated[0, 0, 0], x[0, 0, 0])
    back = apply_rope(rotated, cos, sin, conjugate=True, backend=backend)
    assert torch.allclose(back, x, atol=1e-6)


def test_backends_agree_and_keep_dtype() -> None:
    cos, sin = rope_tables(3, 4, 5, 112)
    x = torch.randn(2, 3, 60, 112, generator=torch.Generator().manual_seed(0))
    ref = apply_rope(x, cos, sin, backend="reference")
    fast = apply_rope(x, cos, sin, backend="torch")
    assert (ref - fast).abs().max() < 1e-6
    assert apply_rope(x.bfloat16(), cos, sin).dtype == torch.bfloat16
