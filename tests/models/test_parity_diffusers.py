"""Our transformer against diffusers' ``SanaWMTransformer3DModel`` (0.42.1), CPU fp32, tiny config.

The tiny config keeps the release's head semantics (head dim 112, softmax every 4th block: blocks 0-2 GDN,
block 3 softmax) at width 224. Every parameter is perturbed, the camera path is a random trajectory.
"""

from __future__ import annotations

import pytest
import torch
from helpers.parity import oracle_and_ours, oracle_case, random_inputs

from sana_wm.models import SanaWMTransformer, sana_wm_1600m_720p
from sana_wm.models.config import config_from_diffusers

GRID = (4, 6)
CASES = [(0, 5), (1, 5), (2, 5), (3, 1), (4, 2)]  # (seed, latent frames)


def _ours(model: SanaWMTransformer, inputs: dict[str, torch.Tensor], **kwargs: object) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs, **kwargs)


@pytest.mark.parametrize("backend", ["torch", "reference"])
@pytest.mark.parametrize(("seed", "frames"), CASES)
def test_fp32_matches_oracle(seed: int, frames: int, backend: str) -> None:
    _, ours = oracle_and_ours()
    inputs, expected, _ = oracle_case(seed, frames, *GRID)
    got = _ours(ours, inputs, backend=backend)
    err = (got - expected).abs().max().item()
    print(
        f"fp32 parity seed={seed} T={frames} backend={backend}: max abs {err:.3g} "
        f"(|out| max {expected.abs().max():.3g})"
    )
    assert err < 1e-4


@pytest.mark.parametrize(("seed", "frames"), [CASES[0], CASES[-1]])
def test_oracle_as_shipped_with_bf16_softmax(seed: int, frames: int) -> None:
    """The oracle as shipped (bf16 softmax q/k/v in an fp32 model) against ours with ``bf16_softmax=True``.

    The bound is the oracle's own noise floor: fp32 rounding differences upstream flip bf16 roundings, ~1e-4
    here. A wrong camera-softmax scale (1/sqrt(112) instead of 1/sqrt(128)) alone moves the output by 4e-3.
    """
    _, ours = oracle_and_ours()
    inputs, _, expected = oracle_case(seed, frames, *GRID)
    err = (_ours(ours, inputs, bf16_softmax=True) - expected).abs().max().item()
    print(f"as-shipped oracle seed={seed} T={frames}: bf16_softmax max abs {err:.3g}")
    assert err < 1e-3


def test_fast_backend_matches_reference() -> None:
    _, ours = oracle_and_ours()
    inputs = random_inputs(7, 2, 6, *GRID)
    err = (_ours(ours, inputs, backend="torch") - _ours(ours, inputs, backend="reference")).abs().max().item()
    print(f"torch vs reference backend T=6: max abs {err:.3g}")
    assert err < 1e-5


def test_state_dict_loads_both_ways() -> None:
    from diffusers import SanaWMTransformer3DModel

    oracle, ours = oracle_and_ours()
    fresh = SanaWMTransformer3DModel(**dict(oracle.config))
    fresh.load_state_dict(ours.state_dict(), strict=True)
    expected = oracle.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in fresh.state_dict().items())


def _official_table_shapes() -> dict[str, tuple[int, ...]]:
    """Every key and shape of the release, written from official_model.md §3 (diffusers' timestep names)."""
    d, f, h, c = 2240, 6720, 20, 128
    table = {
        "x_embedder.proj.weight": (d, c, 1, 1, 1),
        "x_embedder.proj.bias": (d,),
        "plucker_embedder.proj.weight": (d, 48, 1, 1, 1),
        "plucker_embedder.proj.bias": (d,),
        "raymap_embedder.proj.weight": (d, 3, 1, 1, 1),
        "raymap_embedder.proj.bias": (d,),
        "t_embedder.linear_1.weight": (d, 256),
        "t_embedder.linear_1.bias": (d,),
        "t_embedder.linear_2.weight": (d, d),
        "t_embedder.linear_2.bias": (d,),
        "t_block.1.weight": (6 * d, d),
        "t_block.1.bias": (6 * d,),
        "y_embedder.y_proj.fc1.weight": (d, 2304),
        "y_embedder.y_proj.fc1.bias": (d,),
        "y_embedder.y_proj.fc2.weight": (d, d),
        "y_embedder.y_proj.fc2.bias": (d,),
        "attention_y_norm.weight": (d,),
        "final_layer.scale_shift_table": (2, d),
        "final_layer.linear.weight": (c, d),
        "final_layer.linear.bias": (c,),
    }
    per_block = {
        "scale_shift_table": (6, d),
        "attn.qkv.weight": (3 * d, d),
        "attn.proj.weight": (d, d),
        "attn.proj.bias": (d,),
        "attn.q_norm.weight": (d,),
        "attn.k_norm.weight": (d,),
        "attn.beta_proj.weight": (h, d),
        "attn.beta_proj.bias": (h,),
        "attn.gate_proj.weight": (h, d),
        "attn.gate_proj.bias": (h,),
        "attn.A_log": (h,),
        "attn.dt_bias": (h,),
        "attn.recall_gate": (1,),
        "attn.output_gate.weight": (d, d),
        "attn.output_gate.bias": (d,),
        "attn.q_norm_cam.weight": (d,),
        "attn.k_norm_cam.weight": (d,),
        "plucker_proj.weight": (d, d),
        "plucker_proj.bias": (d,),
        "cross_attn.q_linear.weight": (d, d),
        "cross_attn.q_linear.bias": (d,),
        "cross_attn.kv_linear.weight": (2 * d, d),
        "cross_attn.kv_linear.bias": (2 * d,),
        "cross_attn.proj.weight": (d, d),
        "cross_attn.proj.bias": (d,),
        "cross_attn.q_norm.weight": (d,),
        "cross_attn.k_norm.weight": (d,),
        "mlp.inverted_conv.conv.weight": (2 * f, d, 1, 1),
        "mlp.inverted_conv.conv.bias": (2 * f,),
        "mlp.depth_conv.conv.weight": (2 * f, 1, 3, 3),
        "mlp.depth_conv.conv.bias": (2 * f,),
        "mlp.point_conv.conv.weight": (d, f, 1, 1),
        "mlp.t_conv.weight": (d, d, 3, 1),
    }
    for name in ("q_proj_cam", "k_proj_cam", "v_proj_cam", "out_proj_cam"):
        per_block[f"attn.{name}.weight"] = (d, d)
        per_block[f"attn.{name}.bias"] = (d,)
    for i in range(20):
        table.update({f"blocks.{i}.{k}": v for k, v in per_block.items()})
        if i not in (3, 7, 11, 15, 19):
            table[f"blocks.{i}.attn.conv_k.weight"] = (d, 1, 4)
            table[f"blocks.{i}.attn.conv_k_cam.weight"] = (d, 1, 4)
    return table


def test_release_preset_layout_on_meta_device() -> None:
    from diffusers import SanaWMTransformer3DModel

    with torch.device("meta"):
        ours = SanaWMTransformer(sana_wm_1600m_720p())
        oracle = SanaWMTransformer3DModel()
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert ours_shapes == {k: tuple(v.shape) for k, v in oracle.state_dict().items()}
    assert ours_shapes == _official_table_shapes()
    assert sum(p.numel() for p in ours.parameters()) == 2_661_800_448
    block_params = [sum(p.numel() for p in block.parameters()) for block in ours.blocks]
    assert block_params == [130_746_640 if i in (3, 7, 11, 15, 19) else 130_764_560 for i in range(20)]
    assert config_from_diffusers(dict(oracle.config)) == sana_wm_1600m_720p()
