"""The analytic FLOP count: golden values worked out by hand, and its linear part against the real modules."""

from __future__ import annotations

import pytest
import torch

from sana_wm.bench.flops import ClipShape, module_flops, transformer_flops
from sana_wm.models import SanaWMConfig, SanaWMTransformer, sana_wm_1600m_720p, tiny

# Block 0 GDN (with plucker_proj), block 1 softmax. D=16, N=2 heads of E=V=8, H=32, C=4, 6 Plücker channels,
# 8 caption channels, temporal kernel 3, short conv 2 taps (3 symmetric).
SMALL = SanaWMConfig(
    in_channels=4,
    hidden_size=16,
    depth=2,
    head_dim=8,
    cross_attn_heads=2,
    caption_channels=8,
    mlp_ratio=2.0,
    softmax_every_n=2,
    short_conv_kernel=2,
    temporal_kernel=3,
    plucker_channels=6,
    plucker_blocks=1,
)
# B=1, T=2 frames of 1×2 tokens: S=2, M=4 video tokens, 2 frames, L=3 text tokens.
SMALL_SHAPE = ClipShape(batch=1, frames=2, height=1, width=2, text_len=3)


def test_golden_values_of_a_small_config() -> None:
    flops = transformer_flops(SMALL, SMALL_SHAPE)
    assert flops["embedders"] == {
        "x_embedder": 2 * 4 * 16 * 4,  # 512
        "plucker_embedder": 2 * 6 * 16 * 4,  # 768
        # (256→16: 8192) + (16→16: 512) + t_block (16→96: 3072), for 2 frames
        "timestep": 23552,
        "caption": (256 + 512) * 3,  # 8→16 and 16→16 for 3 text tokens
    }
    assert flops["final_layer"] == 512  # 16→4 on 4 tokens
    assert flops["gdn_blocks"] == {
        # 18·16² per token (qkv, camera q/k/v/out, gate, proj) ×4 tokens; beta 2·16·2·4; gate_proj 2·16·2·2
        "attn_linear": 18432 + 256 + 128,
        "short_conv": 2 * 2 * 3 * 16 * 4,  # 2 branches, 3 taps, 16 channels, 4 tokens: 768
        # per head: 2 frames × (main 1088 + camera 768) + 3 steps × (2·64·9 + 2·64·8 = 2176); 2 heads
        "scan": 2 * (2 * (1088 + 768) + 3 * 2176),
        "plucker_proj": 2048,
        "cross_attn_linear": 4096 + 3072,  # q + proj on 4 video tokens, kv (16→32) on 3 text tokens
        "cross_attention": 4 * 4 * 3 * 16,  # 768
        "mlp": (2048 + 1152 + 1024 + 1536) * 4,  # 16→64, 3×3 on 64, 32→16, 3·16² temporal; 23040
    }
    assert flops["softmax_blocks"] == {
        "attn_linear": 18432,
        "attention": 2 * 4 * 2 * 4 * 4 * 8,  # two attentions, 4·N·M²·E: 2048
        "plucker_proj": 0,
        "cross_attn_linear": 7168,
        "cross_attention": 768,
        "mlp": 23040,
    }
    assert flops["blocks"] == {"gdn": 1, "softmax": 1}
    assert flops["linear"] == 27136 + 512 + 51072 + 48640
    assert flops["total"] == 152192
    assert module_flops(flops, "gdn") == {"attn": 18816 + 768 + 20480, "cross_attn": 7936, "mlp": 23040}
    assert module_flops(flops, "softmax") == {"attn": 18432 + 2048, "cross_attn": 7936, "mlp": 23040}


def test_scan_and_attention_grow_as_their_formulas_say() -> None:
    """Doubling the frames doubles every per-token term, quadruples softmax attention, and the scan follows
    T·(per frame) + (2T − 1)·(per step)."""
    shape1 = ClipShape(batch=2, frames=3, height=2, width=3, text_len=5)
    shape2 = ClipShape(batch=2, frames=6, height=2, width=3, text_len=5)
    one, two = transformer_flops(SMALL, shape1), transformer_flops(SMALL, shape2)
    assert two["gdn_blocks"]["mlp"] == 2 * one["gdn_blocks"]["mlp"]
    assert two["softmax_blocks"]["attention"] == 4 * one["softmax_blocks"]["attention"]
    s, e = 6, 8
    per_frame = (4 * s * e * e + 4 * s * e * e + 4 * s * e) + (2 * s * e * e + 4 * s * e * e)
    per_step = 2 * e * e * (e + 1) + 2 * e * e * e
    for shape, flops in ((shape1, one), (shape2, two)):
        t = shape.frames
        assert flops["gdn_blocks"]["scan"] == 2 * 2 * (t * per_frame + (2 * t - 1) * per_step)


# Parameters a forward never applies to tokens as a plain weight, or not at all.
NOT_TOKEN_WEIGHTS = ("scale_shift_table", "conv_k.weight", "conv_k_cam.weight", "raymap_embedder.")
PER_TEXT_TOKEN = ("y_embedder.", "cross_attn.kv_linear.")
PER_FRAME = ("t_embedder.", "t_block.", "attn.gate_proj.")


def _linear_flops_from_modules(model: SanaWMTransformer, shape: ClipShape) -> int:
    """2 · (weight elements touched per token) · tokens, from the real parameter shapes.

    Every parameter with two or more dims must be classified, so a weight added to the model fails this
    test until the FLOP count knows it.
    """
    video = shape.batch * shape.tokens
    text = shape.batch * shape.text_len
    frames = shape.batch * shape.frames
    softmax_blocks = {f"blocks.{i}." for i in range(model.config.depth) if model.config.is_softmax_block(i)}
    total = 0
    for name, param in model.named_parameters():
        if param.ndim < 2 or any(key in name for key in NOT_TOKEN_WEIGHTS):
            continue
        if any(name.startswith(b) for b in softmax_blocks) and ("beta_proj" in name or "gate_proj" in name):
            continue  # softmax blocks carry the GDN gates unused
        if any(key in name for key in PER_TEXT_TOKEN):
            tokens = text
        elif any(key in name for key in PER_FRAME):
            tokens = frames
        else:
            tokens = video
        total += 2 * param.numel() * tokens
    return total


@pytest.mark.parametrize(
    ("cfg", "shape"),
    [
        (SMALL, SMALL_SHAPE),
        (tiny(), ClipShape(batch=2, frames=3, height=4, width=6, text_len=300)),
        (sana_wm_1600m_720p(), ClipShape(batch=2, frames=121, height=22, width=40, text_len=300)),
    ],
    ids=["small", "tiny", "release-961"],
)
def test_linear_count_equals_the_module_weights(cfg: SanaWMConfig, shape: ClipShape) -> None:
    with torch.device("meta"):
        model = SanaWMTransformer(cfg)
    assert transformer_flops(cfg, shape)["linear"] == _linear_flops_from_modules(model, shape)


def test_release_at_961_frames_matches_the_peer_profile() -> None:
    """peer_profile.md: the nine D×D products of a GDN self-attention over 212,960 tokens are ~19 TFLOP, one
    softmax attention over 106,480 tokens (B=2, 20 heads of 112) ~203 TFLOP."""
    flops = transformer_flops(sana_wm_1600m_720p(), ClipShape(2, 121, 22, 40, 300))
    nine_products = 2 * 9 * 2240 * 2240 * 212_960
    assert flops["gdn_blocks"]["attn_linear"] == pytest.approx(15 * nine_products, rel=2e-3)
    assert flops["softmax_blocks"]["attention"] / 10 == 4 * 2 * 20 * 106_480**2 * 112
    assert nine_products == pytest.approx(19.2e12, rel=0.01)
