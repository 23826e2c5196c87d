"""Attention modules of the SANA-WM block: the dual-branch self-attention (frame-wise GDN or softmax) and the
text cross-attention, with the per-call inputs they share (:class:`BlockContext`, :class:`RayTransforms`).

Shape letters: ``docs/conventions.md``.

Self-attention has a *main* branch and a *camera* branch over the same modulated input ``a``; their raw
outputs are summed, gated and projected once: ``proj((main + out_proj_cam(cam)) · SiLU(output_gate(a)))`` with
the gate in fp32. GDN blocks run both branches as frame-wise bidirectional Gated DeltaNet
(``sana_wm.ops.gdn``), softmax blocks as full bidirectional SDPA. The camera branch sees the camera through
UCPE transforms (``sana_wm.ops.ucpe``) of its queries/keys/values and the inverse transform of its output.

Numerics matched to diffusers 0.42.1 (the oracle), with the official NVlabs behaviour where it differs:

- Q/K RMSNorm runs over all ``D`` channels before the head split: variance in fp32, ``x·rsqrt(var+eps)``, cast
  to the weight dtype if that is half precision, times the weight. eps 1e-5 (self-attention), 1e-6 (cross).
- GDN: ReLU after the norm; keys scaled by ``κ = E^−½·S^−½`` (depends on the grid size); RoPE on the numerator
  stream only; ``β = σ(beta_proj(a))`` per token; decay ``g = exp(−exp(A_log)·softplus(gate_proj(mean_S a) +
  dt_bias))`` per frame in fp32; scans in fp32; denominator eps 1e-8.
- Camera GDN: ``β_cam = β / max(1, mean_S(|K′|²/|K|²))`` with norms clamped at 1e-6; transformed Q/K/V are
  first RMS-downscaled to their pre-transform envelope (diffusers does this; the official Triton path does
  not).
- Softmax main branch: RoPE on q/k, no ReLU, scale ``1/√E``. Softmax camera branch: no ReLU/κ, UCPE, RMS
  downscale, scale ``1/√128`` for ``E = 112``: diffusers zero-pads the head to 128 for FlashAttention and
  calls SDPA without a scale (one official commit passes ``1/√112`` explicitly instead).
- diffusers runs both softmax attentions with bf16 q/k/v even when the model is fp32 (a FlashAttention
  workaround); ``bf16_softmax=True`` reproduces that, the default keeps the activations' dtype.
- Cross-attention: q/k RMSNorm over ``D``, no pre-norm, no gate; padded text tokens are excluded with a
  boolean mask (diffusers; the official code adds −10000, identical unless every token is padding, which gives
  NaN here).
- UCPE geometry and transforms run in fp32 here (diffusers and the official code run them in the camera
  tensor's dtype, bf16 at inference), so bf16 runs differ from theirs at bf16 rounding level.

Initialisation: every module here owns an ``init_weights()`` (official SANA-WM values, see each method).
Parameters are written through :func:`init_param_`, so random values depend on the torch seed only, not
on the parameters' device, dtype or sharding.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from sana_wm.models.causal import BlockCache, ChunkKeys, ChunkLayout, earlier_keys
from sana_wm.ops import Backend
from sana_wm.ops.gdn import GDNState, cam_bidirectional, cam_chunk_causal, gdn_bidirectional, gdn_chunk_causal
from sana_wm.ops.norm_gate import silu_gate_sum
from sana_wm.ops.qk_prep import qk_prep
from sana_wm.ops.rope import camera_rope_tables
from sana_wm.ops.short_conv import bidirectional_short_conv, chunk_causal_short_conv
from sana_wm.ops.ucpe import invert_rigid, ray_matrices, ucpe_encode

GDN_EPS = 1e-8
QK_NORM_EPS = 1e-5
CROSS_NORM_EPS = 1e-6
TRANSFORM_NORM_EPS = 1e-6
# Official init of the shared output gate: zero weight and silu(bias) = 1, so the gate starts as identity.
OUTPUT_GATE_INIT_BIAS = 1.278464542761074


@torch.no_grad()
def init_param_(param: Tensor, init: Callable[[Tensor], object]) -> Tensor:
    """Initialise ``param`` in place through a full-size fp32 CPU tensor that ``init`` fills (an ``nn.init``
    function or any in-place fill); returns that tensor.

    So random values depend on the torch seed only: an unsharded fp32 CPU parameter gets exactly what
    ``init(param)`` would draw, a parameter on another device or in another dtype the same numbers, and a
    sharded one (an FSDP2 ``DTensor``; ``sana_wm.train.parallel.init_weights`` makes ``copy_`` keep this
    rank's part of the full tensor) its part of them: the initial weights do not depend on the world size.
    Extra memory: one parameter in fp32 at a time.
    """
    full = torch.empty(param.shape, dtype=torch.float32)
    init(full)
    param.copy_(full.to(param.device))
    return full


def init_linear(linear: nn.Linear, std: float | None = None) -> Tensor:
    """Xavier-uniform weight, or ``N(0, std²)`` given ``std``; zero bias. Returns the weight's values."""
    init = nn.init.xavier_uniform_ if std is None else functools.partial(nn.init.normal_, std=std)
    weight = init_param_(linear.weight, init)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)
    return weight


class RayTransforms(NamedTuple):
    """UCPE transforms for every token (fp32): queries use ``Pᵀ``, keys and values ``P⁻¹``, outputs ``P``."""

    query_BM44: Tensor
    key_BM44: Tensor
    out_BM44: Tensor
    cos_MQ: Tensor
    sin_MQ: Tensor


def ray_transforms(
    camera_BT20: Tensor, grid: tuple[int, int, int], cos_MP: Tensor, sin_MP: Tensor, head_dim: int
) -> RayTransforms:
    """Per-token UCPE transforms from camera conditions ``(B, T, 20)`` and the main RoPE tables; computed once
    per call and shared by every block's camera branch."""
    _, height, width = grid
    world_to_ray_BM44 = ray_matrices(camera_BT20, height, width).flatten(1, 3)
    cos_MQ, sin_MQ = camera_rope_tables(cos_MP, sin_MP, head_dim)
    return RayTransforms(
        query_BM44=world_to_ray_BM44.transpose(-1, -2),
        key_BM44=invert_rigid(world_to_ray_BM44),
        out_BM44=world_to_ray_BM44,
        cos_MQ=cos_MQ,
        sin_MQ=sin_MQ,
    )


@dataclass(frozen=True)
class BlockContext:
    """Per-call inputs shared by every block: the latent grid, RoPE tables, camera transforms and settings.

    Memory knobs (results do not depend on them): ``heads_per_chunk``: both self-attention branches are
    computed for this many heads at a time (heads are independent until the output projections), so the
    intermediates of the scans, UCPE transforms and attentions exist for one group of heads only;
    ``ffn_frames_per_chunk``: the FFN's per-frame part runs on this many latent frames at a time. ``None``
    means all at once.

    Chunk-causal (``sana_wm.models.causal``): ``layout`` is the forward's chunks (``None``: bidirectional);
    each block then reads its :class:`BlockCache` (if any) and, with ``write_cache``, stores this forward's
    chunks in it.
    """

    grid: tuple[int, int, int]
    rope_cos_MP: Tensor
    rope_sin_MP: Tensor
    rays: RayTransforms
    backend: Backend
    bf16_softmax: bool
    heads_per_chunk: int | None = None
    ffn_frames_per_chunk: int | None = None
    layout: ChunkLayout | None = None
    write_cache: bool = False

    def head_groups(self, heads: int) -> list[slice]:
        step = heads if self.heads_per_chunk is None else max(1, min(self.heads_per_chunk, heads))
        return [slice(start, min(start + step, heads)) for start in range(0, heads, step)]


def _sdpa(q: Tensor, k: Tensor, v: Tensor, scale: float | None, backend: Backend) -> Tensor:
    """SDPA; with the ``"triton"`` backend on CUDA, cuDNN attention first (the fastest at head dim 112), then
    flash, memory-efficient and math as fallbacks."""
    if backend == "triton" and q.is_cuda:
        with sdpa_kernel(_CUDNN_FIRST, set_priority=True):
            return F.scaled_dot_product_attention(q, k, v, scale=scale)
    return F.scaled_dot_product_attention(q, k, v, scale=scale)


_CUDNN_FIRST = [
    SDPBackend.CUDNN_ATTENTION,
    SDPBackend.FLASH_ATTENTION,
    SDPBackend.EFFICIENT_ATTENTION,
    SDPBackend.MATH,
]


class RMSNorm(nn.Module):
    """RMS normalisation over the last dim with a learned weight (diffusers 0.42.1 dtype behaviour; with
    ``fp32=True`` everything in fp32 whatever the weight's dtype). The weight starts at ``init_value``."""

    def __init__(self, dim: int, eps: float, fp32: bool = False, init_value: float = 1.0) -> None:
        super().__init__()
        self.eps = eps
        self.fp32 = fp32
        self.init_value = init_value
        self.weight = nn.Parameter(torch.full((dim,), init_value))

    @torch.no_grad()
    def init_weights(self) -> None:
        nn.init.constant_(self.weight, self.init_value)

    def forward(self, x: Tensor) -> Tensor:
        if self.fp32:
            x = x.float()
            return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + self.eps) * self.weight.float()
        normed = x * torch.rsqrt(x.float().square().mean(-1, keepdim=True) + self.eps)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            normed = normed.to(self.weight.dtype)
        return normed * self.weight


class ShortConv(nn.Module):
    """Bidirectional depthwise short conv along frames; weight in fla's causal ``(C, 1, K)`` layout."""

    def __init__(self, channels: int, taps: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels, 1, taps))

    @torch.no_grad()
    def init_weights(self) -> None:
        """The identity: last causal tap 1, the others 0."""
        init_param_(self.weight, lambda w: nn.init.zeros_(w)[:, 0, -1].fill_(1.0))

    def forward(
        self,
        x_BMD: Tensor,
        num_frames: int,
        backend: Backend,
        layout: ChunkLayout | None = None,
        tail_BKSD: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """The filtered ``x`` and, chunk-causal, its last ``taps − 1`` input frames (after ``tail_BKSD``, the
        previous call's): what the next chunk's causal half reads."""
        x_BTSD = x_BMD.unflatten(1, (num_frames, -1))
        if layout is None:
            return bidirectional_short_conv(x_BTSD, self.weight[:, 0], backend=backend).flatten(1, 2), None
        taps = self.weight.shape[-1]
        if tail_BKSD is not None and tail_BKSD.shape[1] < taps - 1:  # fewer frames so far than taps: zeros
            tail_BKSD = F.pad(tail_BKSD, (0, 0, 0, 0, taps - 1 - tail_BKSD.shape[1], 0))
        y_BTSD = chunk_causal_short_conv(
            x_BTSD, self.weight[:, 0], starts=layout.starts, tail_BKSC=tail_BKSD, backend=backend
        )
        history = x_BTSD if tail_BKSD is None else torch.cat([tail_BKSD.to(x_BTSD.dtype), x_BTSD], dim=1)
        return y_BTSD.flatten(1, 2), history[:, max(history.shape[1] - taps + 1, 0) :].detach().clone()


def camera_softmax_scale(head_dim: int) -> float:
    """Softmax scale of the camera branch: that of the head dim diffusers zero-pads to (112 → 128)."""
    if head_dim in (32, 64, 128, 256) or head_dim >= 256:
        return head_dim**-0.5
    return (128 if head_dim <= 128 else 256) ** -0.5


class DualBranchAttention(nn.Module):
    """Parameters shared by the GDN and softmax variants (identical checkpoint layout, minus ``conv_k*``)."""

    def __init__(self, dim: int, head_dim: int, short_conv_kernel: int | None) -> None:
        super().__init__()
        heads = dim // head_dim
        self.heads, self.head_dim = heads, head_dim
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.q_norm = RMSNorm(dim, QK_NORM_EPS)
        self.k_norm = RMSNorm(dim, QK_NORM_EPS)
        # Frame gates of the delta rule; softmax blocks carry them (unused) so one checkpoint layout fits all.
        self.beta_proj = nn.Linear(dim, heads)
        self.gate_proj = nn.Linear(dim, heads)
        self.A_log = nn.Parameter(torch.zeros(heads))
        self.dt_bias = nn.Parameter(torch.zeros(heads))
        self.register_buffer("recall_gate", torch.zeros(1))
        self.output_gate = nn.Linear(dim, dim)
        if short_conv_kernel is not None:
            self.conv_k = ShortConv(dim, short_conv_kernel)
        self.q_proj_cam = nn.Linear(dim, dim)
        self.k_proj_cam = nn.Linear(dim, dim)
        self.v_proj_cam = nn.Linear(dim, dim)
        self.out_proj_cam = nn.Linear(dim, dim)
        self.q_norm_cam = RMSNorm(dim, QK_NORM_EPS)
        self.k_norm_cam = RMSNorm(dim, QK_NORM_EPS)
        if short_conv_kernel is not None:
            self.conv_k_cam = ShortConv(dim, short_conv_kernel)

    @torch.no_grad()
    def init_weights(self) -> None:
        """Official init. ``qkv`` and ``proj`` Xavier-uniform (zero bias), norms 1, identity short convs.

        The delta-rule gates start "linear-attention equivalent": ``beta_proj`` weight 0 / bias 5,
        ``gate_proj`` 0, ``A_log`` 0, ``dt_bias`` −5. The output gate starts as the identity (weight 0,
        ``silu(bias) = 1``). The camera branch starts as a copy of the main one (its q/k/v projections take
        the ``qkv`` weights, zero bias) whose output is silenced by a zero ``out_proj_cam``.
        """
        qkv = init_linear(self.qkv)
        init_linear(self.proj)
        for module in (self.q_norm, self.k_norm, self.q_norm_cam, self.k_norm_cam):
            module.init_weights()
        nn.init.zeros_(self.beta_proj.weight)
        nn.init.constant_(self.beta_proj.bias, 5.0)
        nn.init.zeros_(self.gate_proj.weight)
        nn.init.zeros_(self.gate_proj.bias)
        nn.init.zeros_(self.A_log)
        nn.init.constant_(self.dt_bias, -5.0)
        self.recall_gate.zero_()
        nn.init.zeros_(self.output_gate.weight)
        nn.init.constant_(self.output_gate.bias, OUTPUT_GATE_INIT_BIAS)
        cams = (self.q_proj_cam, self.k_proj_cam, self.v_proj_cam)
        for cam, weight in zip(cams, qkv.chunk(3), strict=True):
            cam.weight.copy_(weight.to(cam.weight.device))
            nn.init.zeros_(cam.bias)
        nn.init.zeros_(self.out_proj_cam.weight)
        nn.init.zeros_(self.out_proj_cam.bias)
        for conv in (getattr(self, "conv_k", None), getattr(self, "conv_k_cam", None)):
            if conv is not None:
                conv.init_weights()

    def _heads(self, x_BMD: Tensor) -> Tensor:
        return x_BMD.unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)  # (B, N, M, E)

    def _head_view(self, x_BMD: Tensor) -> Tensor:
        return x_BMD.unflatten(-1, (self.heads, self.head_dim))  # (B, M, N, E), a view to write heads into

    def _combine(self, x_BMD: Tensor, main_BMD: Tensor, cam_BMD: Tensor, backend: Backend) -> Tensor:
        gated = silu_gate_sum(main_BMD, self.out_proj_cam(cam_BMD), self.output_gate(x_BMD), backend=backend)
        return self.proj(gated)

    def _prep(
        self, x_BMD: Tensor, norm: RMSNorm, ctx: BlockContext, *, relu: bool, scale: float, rope: bool
    ) -> tuple[Tensor, Tensor | None]:
        tables = (ctx.rope_cos_MP, ctx.rope_sin_MP) if rope else None
        return _prep(x_BMD, norm, self.heads, ctx.backend, relu=relu, scale=scale, rope=tables)


def _prep(
    x_BMD: Tensor,
    norm: RMSNorm,
    heads: int,
    backend: Backend,
    *,
    relu: bool = False,
    scale: float = 1.0,
    rope: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor | None]:
    """``scale·act(norm(x))`` and, given RoPE tables, its rotation, both ``(B, M, D)``: one fused op."""
    cos_MP, sin_MP = rope if rope is not None else (None, None)
    return qk_prep(
        x_BMD,
        norm.weight,
        eps=norm.eps,
        relu=relu,
        scale=scale,
        rope_cos_MP=cos_MP,
        rope_sin_MP=sin_MP,
        heads=heads,
        backend=backend,
    )


def _to_ray_space(
    q_BNME: Tensor,
    k_BNME: Tensor,
    v_BNME: Tensor,
    rays: RayTransforms,
    backend: Backend,
    out_dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor, Tensor]:
    """UCPE-encode camera q (``Pᵀ``) and k/v (``P⁻¹``), each scaled down to its pre-transform RMS; computed
    in fp32, returned in ``out_dtype`` (fp32 for the GDN scans: rounding the transformed values to bf16 costs
    more accuracy than anything else in the camera branch)."""
    pairs = ((q_BNME, rays.query_BM44), (k_BNME, rays.key_BM44), (v_BNME, rays.key_BM44))
    q, k, v = (
        ucpe_encode(x, m, rays.cos_MQ, rays.sin_MQ, downscale=True, out_dtype=out_dtype, backend=backend)
        for x, m in pairs
    )
    return q, k, v


def _from_ray_space(o_BNME: Tensor, rays: RayTransforms, backend: Backend) -> Tensor:
    return ucpe_encode(o_BNME, rays.out_BM44, rays.cos_MQ, rays.sin_MQ, conjugate=True, backend=backend)


class GDNCameraAttention(DualBranchAttention):
    """Dual-branch frame-wise bidirectional Gated DeltaNet (main with denominator, camera numerator-only)."""

    def __init__(self, dim: int, head_dim: int, short_conv_kernel: int) -> None:
        super().__init__(dim, head_dim, short_conv_kernel)

    def _frame_decay(self, a_BMD: Tensor, num_frames: int) -> Tensor:
        frame_mean_BTD = a_BMD.unflatten(1, (num_frames, -1)).mean(2)
        gate_BTN = self.gate_proj(frame_mean_BTD).float()
        rate_N = self.A_log.float().exp()
        return torch.exp(-rate_N * F.softplus(gate_BTN + self.dt_bias.float())).transpose(1, 2)  # (B, N, T)

    def forward(self, a_BMD: Tensor, ctx: BlockContext, cache: BlockCache | None = None) -> Tensor:
        num_frames, height, width = ctx.grid
        kappa = self.head_dim**-0.5 * (height * width) ** -0.5
        layout = ctx.layout
        write = cache is not None and ctx.write_cache

        def frames(x_BNME: Tensor) -> Tensor:
            return x_BNME.unflatten(2, (num_frames, -1))  # (B, N, T, S, E)

        def scan(scan_fn: Callable[..., Tensor], state_fn: Callable[..., tuple[Tensor, object]], *args, init):
            """Bidirectional, or chunk-causal from ``init`` returning the final state too."""
            if layout is None:
                return scan_fn(*args), None
            return state_fn(*args, starts=layout.starts, initial_state=init)

        beta_BNTS = torch.sigmoid(self.beta_proj(a_BMD)).unflatten(1, (num_frames, -1)).permute(0, 3, 1, 2)
        decay_BNT = self._frame_decay(a_BMD, num_frames)

        q, k, v = self.qkv(a_BMD).chunk(3, dim=-1)
        k, conv_tail = self.conv_k(k, num_frames, ctx.backend, layout, cache and cache.conv_k_tail)
        q, q_rot = self._prep(q, self.q_norm, ctx, relu=True, scale=1.0, rope=True)
        k, k_rot = self._prep(k, self.k_norm, ctx, relu=True, scale=kappa, rope=True)
        q, k, v, q_rot, k_rot = (self._heads(x) for x in (q, k, v, q_rot, k_rot))
        main_BMD = torch.empty_like(a_BMD)
        main_states: list[GDNState] = []
        gdn = functools.partial(gdn_bidirectional, eps=GDN_EPS, backend=ctx.backend)
        gdn_causal = functools.partial(gdn_chunk_causal, eps=GDN_EPS, backend=ctx.backend)
        for hs in ctx.head_groups(self.heads):
            init = (
                None
                if cache is None or cache.gdn is None
                else GDNState(cache.gdn.kv[:, hs], cache.gdn.z[:, hs])
            )
            main, state = scan(
                gdn,
                gdn_causal,
                frames(q[:, hs]),
                frames(k[:, hs]),
                frames(v[:, hs]),
                frames(q_rot[:, hs]),
                frames(k_rot[:, hs]),
                beta_BNTS[:, hs],
                decay_BNT[:, hs],
                init=init,
            )  # (B, n, T, S, E) fp32
            main_states += [state] if write else []
            self._head_view(main_BMD)[:, :, hs] = main.flatten(2, 3).transpose(1, 2)
            del main
        del q, k, v, q_rot, k_rot

        q_cam, _ = self._prep(self.q_proj_cam(a_BMD), self.q_norm_cam, ctx, relu=True, scale=1.0, rope=False)
        k_cam, cam_conv_tail = self.conv_k_cam(
            self.k_proj_cam(a_BMD), num_frames, ctx.backend, layout, cache and cache.conv_k_cam_tail
        )
        k_cam, _ = self._prep(k_cam, self.k_norm_cam, ctx, relu=True, scale=kappa, rope=False)
        q_cam, k_cam, v_cam = self._heads(q_cam), self._heads(k_cam), self._heads(self.v_proj_cam(a_BMD))
        cam_BMD = torch.empty_like(a_BMD)
        cam_states: list[Tensor] = []
        cam_scan = functools.partial(cam_bidirectional, backend=ctx.backend)
        cam_causal = functools.partial(cam_chunk_causal, backend=ctx.backend)
        for hs in ctx.head_groups(self.heads):
            key_norm_BNM = torch.linalg.vector_norm(k_cam[:, hs], dim=-1, dtype=torch.float32).clamp_min(
                TRANSFORM_NORM_EPS
            )
            q_ray, k_ray, v_ray = _to_ray_space(
                q_cam[:, hs], k_cam[:, hs], v_cam[:, hs], ctx.rays, ctx.backend
            )
            inflation_BNM = (
                torch.linalg.vector_norm(k_ray, dim=-1).clamp_min(TRANSFORM_NORM_EPS) / key_norm_BNM
            ) ** 2
            frame_inflation_BNT = inflation_BNM.unflatten(2, (num_frames, -1)).mean(-1)
            beta_cam_BNTS = beta_BNTS[:, hs].float() / frame_inflation_BNT.clamp_min(1.0)[..., None]
            init = None if cache is None or cache.cam_state is None else cache.cam_state[:, hs]
            cam, state = scan(
                cam_scan,
                cam_causal,
                frames(q_ray),
                frames(k_ray),
                frames(v_ray),
                beta_cam_BNTS,
                decay_BNT[:, hs],
                init=init,
            )  # (B, n, T, S, E) fp32
            cam_states += [state] if write else []
            cam = _from_ray_space(cam.flatten(2, 3), ctx.rays, ctx.backend)
            self._head_view(cam_BMD)[:, :, hs] = cam.transpose(1, 2)
            del q_ray, k_ray, v_ray, cam
        del q_cam, k_cam, v_cam
        if write:
            cache.gdn = GDNState(
                kv=torch.cat([s.kv for s in main_states], dim=1),
                z=torch.cat([s.z for s in main_states], dim=1),
            )
            cache.cam_state = torch.cat(cam_states, dim=1)
            cache.conv_k_tail, cache.conv_k_cam_tail = conv_tail, cam_conv_tail
        return self._combine(a_BMD, main_BMD, cam_BMD, ctx.backend)


def _attend(
    q_BNME: Tensor,
    k_BNME: Tensor,
    v_BNME: Tensor,
    scale: float | None,
    ctx: BlockContext,
    cached: dict[int, tuple[Tensor, Tensor]],
) -> Tensor:
    """Softmax attention, bidirectional or chunk-causal: each chunk's queries attend to its own keys and
    those of the earlier chunks its window reads (one SDPA call per chunk; no mask tensor)."""
    layout = ctx.layout
    if layout is None:
        return _sdpa(q_BNME, k_BNME, v_BNME, scale, ctx.backend)
    tokens = ctx.grid[1] * ctx.grid[2]
    out = torch.empty_like(q_BNME)
    for local, (start, end) in enumerate(layout.bounds(ctx.grid[0])):
        rows = slice(start * tokens, end * tokens)
        if layout.reads_whole_prefix:
            keys, values = k_BNME[:, :, : end * tokens], v_BNME[:, :, : end * tokens]
        else:
            earlier_k, earlier_v = earlier_keys(layout, local, ctx.grid, k_BNME, v_BNME, cached)
            keys = torch.cat([*earlier_k, k_BNME[:, :, rows]], dim=2)
            values = torch.cat([*earlier_v, v_BNME[:, :, rows]], dim=2)
        out[:, :, rows] = _sdpa(q_BNME[:, :, rows], keys, values, scale, ctx.backend)
    return out


class SoftmaxCameraAttention(DualBranchAttention):
    """Dual-branch full bidirectional softmax attention (no short convs; GDN gates present but unused)."""

    def __init__(self, dim: int, head_dim: int) -> None:
        super().__init__(dim, head_dim, None)

    def forward(self, a_BMD: Tensor, ctx: BlockContext, cache: BlockCache | None = None) -> Tensor:
        sdpa_dtype = torch.bfloat16 if ctx.bf16_softmax else a_BMD.dtype
        write = cache is not None and ctx.write_cache
        stored = cache.keys if cache is not None else {}

        q, k, v = self.qkv(a_BMD).chunk(3, dim=-1)
        _, q = self._prep(q, self.q_norm, ctx, relu=False, scale=1.0, rope=True)
        _, k = self._prep(k, self.k_norm, ctx, relu=False, scale=1.0, rope=True)
        q, k, v = (self._heads(x).to(sdpa_dtype) for x in (q, k, v))
        main_BMD = torch.empty_like(a_BMD)
        for hs in ctx.head_groups(self.heads):
            cached = {i: (c.k[:, hs], c.v[:, hs]) for i, c in stored.items()}
            main = _attend(q[:, hs], k[:, hs], v[:, hs], None, ctx, cached)
            self._head_view(main_BMD)[:, :, hs] = main.transpose(1, 2)
            del main
        del q

        q_cam, _ = self._prep(self.q_proj_cam(a_BMD), self.q_norm_cam, ctx, relu=False, scale=1.0, rope=False)
        k_cam, _ = self._prep(self.k_proj_cam(a_BMD), self.k_norm_cam, ctx, relu=False, scale=1.0, rope=False)
        q_cam, k_cam, v_cam = self._heads(q_cam), self._heads(k_cam), self._heads(self.v_proj_cam(a_BMD))
        cam_BMD = torch.empty_like(a_BMD)
        scale = camera_softmax_scale(self.head_dim)
        k_rays, v_rays = [], []
        for hs in ctx.head_groups(self.heads):
            q_ray, k_ray, v_ray = _to_ray_space(
                q_cam[:, hs], k_cam[:, hs], v_cam[:, hs], ctx.rays, ctx.backend, sdpa_dtype
            )
            cached = {i: (c.k_cam[:, hs], c.v_cam[:, hs]) for i, c in stored.items()}
            cam = _attend(q_ray, k_ray, v_ray, scale, ctx, cached)
            k_rays += [k_ray] if write else []
            v_rays += [v_ray] if write else []
            del q_ray, k_ray, v_ray
            self._head_view(cam_BMD)[:, :, hs] = _from_ray_space(cam, ctx.rays, ctx.backend).transpose(1, 2)
            del cam
        del q_cam, k_cam, v_cam
        if write:
            assert ctx.layout is not None
            k_ray_all, v_ray_all = torch.cat(k_rays, dim=1), torch.cat(v_rays, dim=1)
            tokens = ctx.grid[1] * ctx.grid[2]
            for local, (start, end) in enumerate(ctx.layout.bounds(ctx.grid[0])):
                rows = slice(start * tokens, end * tokens)
                cache.keys[ctx.layout.first_chunk + local] = ChunkKeys(
                    *(x[:, :, rows].detach().clone() for x in (k, v, k_ray_all, v_ray_all))
                )
        return self._combine(a_BMD, main_BMD, cam_BMD, ctx.backend)


class CrossAttention(nn.Module):
    """Cross-attention from video tokens to text tokens (q/k RMSNorm over ``D``, boolean key mask)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_linear = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.q_norm = RMSNorm(dim, CROSS_NORM_EPS)
        self.k_norm = RMSNorm(dim, CROSS_NORM_EPS)

    @torch.no_grad()
    def init_weights(self) -> None:
        """Official init: Xavier-uniform linears with zero biases, norms 1."""
        for linear in (self.q_linear, self.kv_linear, self.proj):
            init_linear(linear)
        self.q_norm.init_weights()
        self.k_norm.init_weights()

    def forward(self, x_BMD: Tensor, text_BLD: Tensor, keep_BL: Tensor, backend: Backend = "torch") -> Tensor:
        dim = x_BMD.shape[-1]

        def split(t: Tensor) -> Tensor:
            return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, N, M or L, E)

        q, _ = _prep(self.q_linear(x_BMD), self.q_norm, self.heads, backend)
        q = split(q)
        k, v = self.kv_linear(text_BLD).unflatten(-1, (2, dim)).unbind(-2)
        out = F.scaled_dot_product_attention(
            q, split(self.k_norm(k)), split(v), attn_mask=keep_BL[:, None, None, :]
        )
        return self.proj(out.transpose(1, 2).flatten(2).to(x_BMD.dtype))
