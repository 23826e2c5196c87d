"""Analytic FLOP count of one forward of the stage-1 transformer, per component, from the config and the clip.

Shape letters: docs/conventions.md.

Counting rules (multiply-add = 2 FLOPs; "model FLOPs": what the math needs, not what an implementation does):

- Every weight is applied once per token it touches: a linear or a 1×1 / temporal / depthwise convolution
  costs ``2 · (weight elements)`` per token. Video tokens: the patch and Plücker embedders, self-attention
  ``qkv`` (3D²), camera q/k/v/out (4D²), output gate (D²), ``proj`` (D²), ``plucker_proj`` (D², blocks
  ``i < plucker_blocks``), cross-attention ``q_linear`` and ``proj`` (2D²), the FFN (``D→2H``, depthwise
  3×3 on ``2H`` channels, ``H→D``, temporal ``k·D²``), the final layer, and ``beta_proj`` (D·N, GDN
  blocks). Text tokens: the caption MLP and cross-attention ``kv_linear`` (2D², per block). Once per frame
  and sample: the timestep MLP, ``t_block`` and ``gate_proj`` (GDN blocks, on the frame mean). The sum of
  these is ``linear``.
- The bidirectional short conv on K (GDN blocks, main and camera branch) is the symmetric ``2k−1``-tap filter
  per channel and video token; counted on its own (not ``2 · weight elements``).
- Softmax attention: ``4·B·N·M²·E`` per attention (``QKᵀ`` and ``PV``), two per softmax block (main and
  camera branch). Cross-attention: ``4·B·M·L·D`` per block (all ``L`` text tokens, padding included).
- GDN scans, per sample, head and frame, as the affine-map recurrence (``sana_wm/ops/README.md``): main branch
  Gram matrices of the rotated and the unrotated keys (``2·S·E²`` each), writes ``2·S·E·V`` (state) and
  ``2·S·E`` (``z``), read-outs ``2·S·E·V`` and ``2·S·E``; camera branch Gram, write and read-out. The
  per-frame contractions are shared by both directions (they do not depend on the direction, and read-outs are
  linear in the state); the state updates are per direction: ``2·E²·(V+1)`` (main, ``M`` and ``z``) and
  ``2·E²·V`` (camera) per step, ``T`` forward steps plus ``T−1`` backward ones.
- Not counted: norms, RoPE, UCPE 4×4 transforms, softmax exponentials, gates, biases and other elementwise
  work; the ``raymap_embedder`` (never computed) and the GDN gates that softmax blocks carry unused.
"""

from __future__ import annotations

from dataclasses import dataclass

from sana_wm.models.config import SanaWMConfig
from sana_wm.models.dit import TIMESTEP_CHANNELS

DEPTHWISE_TAPS = 9  # the FFN's depthwise 3×3
MODULATION_VECTORS = 6  # t_block: shift/scale/gate for attention and FFN


@dataclass(frozen=True)
class ClipShape:
    """One model call: ``batch`` samples of ``frames`` latent frames on a ``height × width`` latent grid, each
    with ``text_len`` text tokens."""

    batch: int
    frames: int
    height: int
    width: int
    text_len: int

    @property
    def tokens_per_frame(self) -> int:
        return self.height * self.width

    @property
    def tokens(self) -> int:
        """Video tokens per sample ``M = T·h·w``."""
        return self.frames * self.tokens_per_frame


def _blocks(cfg: SanaWMConfig, shape: ClipShape, softmax: bool) -> dict[str, int]:
    """FLOPs of all blocks of one kind (GDN or softmax), per component."""
    indices = [i for i in range(cfg.depth) if cfg.is_softmax_block(i) == softmax]
    dim, heads, head_dim, hidden = cfg.hidden_size, cfg.num_heads, cfg.head_dim, cfg.ffn_hidden
    video = shape.batch * shape.tokens
    text = shape.batch * shape.text_len
    frames = shape.batch * shape.frames
    count = len(indices)

    # qkv 3D², camera q/k/v/out 4D², output gate D², proj D².
    attn_linear = 2 * 9 * dim * dim * video
    if not softmax:
        attn_linear += 2 * dim * heads * video + 2 * dim * heads * frames  # beta_proj per token, gate_proj
    parts = {"attn_linear": count * attn_linear}
    if softmax:
        parts["attention"] = count * 2 * 4 * shape.batch * heads * shape.tokens**2 * head_dim
    else:
        parts["short_conv"] = count * 2 * 2 * (2 * cfg.short_conv_kernel - 1) * dim * video
        parts["scan"] = count * shape.batch * heads * _scan_per_head(shape, head_dim)
    parts["plucker_proj"] = sum(i < cfg.plucker_blocks for i in indices) * 2 * dim * dim * video
    parts["cross_attn_linear"] = count * (2 * 2 * dim * dim * video + 2 * dim * 2 * dim * text)
    parts["cross_attention"] = count * 4 * shape.batch * shape.tokens * shape.text_len * dim
    per_token_mlp = (
        2 * dim * 2 * hidden  # inverted 1×1, D → 2H
        + 2 * DEPTHWISE_TAPS * 2 * hidden  # depthwise 3×3 on 2H channels
        + 2 * hidden * dim  # point 1×1, H → D
        + 2 * cfg.temporal_kernel * dim * dim  # temporal (k, 1) conv, D → D
    )
    parts["mlp"] = count * per_token_mlp * video
    return parts


def _scan_per_head(shape: ClipShape, head_dim: int) -> int:
    """Both GDN scans (main and camera branch) of one sample and head over the whole clip."""
    s, e, v, t = shape.tokens_per_frame, head_dim, head_dim, shape.frames
    main_frame = 2 * (2 * s * e * e) + 2 * s * e * v + 2 * s * e + 2 * s * e * v + 2 * s * e
    cam_frame = 2 * s * e * e + 2 * s * e * v + 2 * s * e * v
    steps = t + (t - 1)  # forward inclusive, backward exclusive
    return t * (main_frame + cam_frame) + steps * (2 * e * e * (v + 1) + 2 * e * e * v)


def transformer_flops(cfg: SanaWMConfig, shape: ClipShape) -> dict:
    """FLOPs of one forward, by component.

    Returns ``{"embedders": {...}, "gdn_blocks": {...}, "softmax_blocks": {...}, "final_layer", "blocks":
    {"gdn": n, "softmax": n}, "linear", "total"}``; the block dicts sum all blocks of that kind and hold
    ``attn_linear``, ``attention`` (softmax) or ``short_conv`` + ``scan`` (GDN), ``plucker_proj``,
    ``cross_attn_linear``, ``cross_attention`` and ``mlp``. ``linear`` is every weight applied to the tokens
    it touches (see the module docstring); ``total`` everything counted. Plain Python integers (exact).
    """
    dim = cfg.hidden_size
    video = shape.batch * shape.tokens
    embedders = {
        "x_embedder": 2 * cfg.in_channels * dim * video,
        "plucker_embedder": 2 * cfg.plucker_channels * dim * video,
        # t_embedder (256 → D → D) and t_block (D → 6D), once per frame and sample.
        "timestep": (2 * TIMESTEP_CHANNELS * dim + 2 * dim * dim + 2 * dim * MODULATION_VECTORS * dim)
        * shape.batch
        * shape.frames,
        "caption": (2 * cfg.caption_channels * dim + 2 * dim * dim) * shape.batch * shape.text_len,
    }
    gdn, softmax = _blocks(cfg, shape, softmax=False), _blocks(cfg, shape, softmax=True)
    final_layer = 2 * dim * cfg.in_channels * video
    block_linear = ("attn_linear", "plucker_proj", "cross_attn_linear", "mlp")
    linear = sum(embedders.values()) + final_layer + sum(gdn[k] + softmax[k] for k in block_linear)
    total = sum(embedders.values()) + final_layer + sum(gdn.values()) + sum(softmax.values())
    softmax_count = sum(cfg.is_softmax_block(i) for i in range(cfg.depth))
    return {
        "embedders": embedders,
        "gdn_blocks": gdn,
        "softmax_blocks": softmax,
        "final_layer": final_layer,
        "blocks": {"gdn": cfg.depth - softmax_count, "softmax": softmax_count},
        "linear": linear,
        "total": total,
    }


def module_flops(flops: dict, kind: str) -> dict[str, int]:
    """FLOPs of the submodules the per-module timing measures, summed over the blocks of ``kind``
    (``"gdn"`` or ``"softmax"``): ``attn`` (self-attention, both branches), ``cross_attn`` and ``mlp``."""
    parts = flops[f"{kind}_blocks"]
    attn = sum(parts.get(key, 0) for key in ("attn_linear", "attention", "short_conv", "scan"))
    return {
        "attn": attn,
        "cross_attn": parts["cross_attn_linear"] + parts["cross_attention"],
        "mlp": parts["mlp"],
    }
