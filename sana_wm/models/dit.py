"""SANA-WM stage-1 transformer: a camera-controlled video DiT with hybrid frame-wise GDN / softmax attention.

Shape letters: ``docs/conventions.md``. The attention modules are in ``attention.py``; everything else the
forward runs is here, in reading order: embedders, FFN, block, final layer, :class:`SanaWMTransformer`.

The model predicts the flow velocity ``v = noise − data`` for a whole clip in one call. Image conditioning
is "frame 0 clean with timestep 0": nothing else marks it. Camera control enters twice: the chunked Plücker
map is embedded once and added after the self-attention of the first ``plucker_blocks`` blocks, and the raw
camera conditions drive per-token UCPE transforms in every block's camera branch.

Layout rule: block ``i`` uses softmax self-attention iff ``(i + 1) % softmax_every_n == 0`` (blocks 3, 7, 11,
15, 19 of the release), frame-wise GDN otherwise (:meth:`SanaWMConfig.is_softmax_block`). Modulation is
*frame-aware*: each latent frame has its own timestep, so the six adaLN vectors (shift/scale/gate for
attention, then for the FFN) are ``scale_shift_table + t_block(t)`` per frame, broadcast over that frame's
tokens. One block:

    a = LN(x)·(1 + scale_msa) + shift_msa            (LayerNorm without affine, eps 1e-6)
    x = x + gate_msa · SelfAttn(a)
    x = x + plucker_proj(plucker)                     (no gate, no timestep; blocks i < plucker_blocks)
    x = x + CrossAttn(x, text)                        (no pre-norm, no gate)
    x = x + gate_mlp · FFN(LN(x)·(1 + scale_mlp) + shift_mlp)

State-dict keys and shapes equal diffusers' ``SanaWMTransformer3DModel`` (``t_embedder.linear_1/linear_2``);
the official checkpoint differs only by name (``t_embedder.mlp.0/mlp.2``), an extra ``y_embedder.y_embedding``
and ``pos_embed``, mapped by ``checkpoint_io``. The checkpoint's ``raymap_embedder`` (an absolute up/latitude
map embedding) is kept for loading and never computed: the release disables it.

Precision: parameters may be bf16; fp32 is kept where diffusers 0.42.1 keeps it — timestep sinusoid, RMSNorm
variance, LayerNorm statistics, RoPE and UCPE arithmetic, GDN decay and scans, the SiLU output gate — and,
past diffusers, where it is cheap and bf16 rounding would dominate the error: the residual stream ``x``
between and inside blocks is fp32 (each branch's output is added to it in fp32; only the branches' inputs
are rounded to the weights' dtype), and the small modules outside the blocks (patch, timestep and caption
embedders, ``t_block``, the adaLN tables, the final layer) compute in fp32 from upcast weights, so the
velocity comes out in fp32. Timesteps are floored to integers before the sinusoid (the release has
``timestep_norm_scale_factor = 1``).

Initialisation: each module's ``init_weights()`` sets its own parameters (official SANA-WM values) and calls
its children's; :meth:`SanaWMTransformer.init_weights` also runs on FSDP2-sharded parameters
(``attention.init_param_``). Activation checkpointing and sharding are applied from
``sana_wm.train.parallel``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sana_wm.errors import InputError
from sana_wm.models.attention import (
    BlockContext,
    CrossAttention,
    GDNCameraAttention,
    RMSNorm,
    SoftmaxCameraAttention,
    init_linear,
    init_param_,
    ray_transforms,
)
from sana_wm.models.causal import BlockCache, ChunkLayout, StreamCache
from sana_wm.models.config import SanaWMConfig
from sana_wm.models.ffn import GLUMBConvTemp
from sana_wm.models.quant import weight_dtype
from sana_wm.ops import Backend, check_backend
from sana_wm.ops.norm_gate import layer_norm_modulate
from sana_wm.ops.rope import rope_tables
from sana_wm.samplers.chunked import chunk_starts

LN_EPS = 1e-6
Y_NORM_EPS = 1e-5
Y_NORM_INIT = 0.01  # official ``y_norm_scale_factor``: the text features start small
CAMERA_CONDITION_CHANNELS = 20
TIMESTEP_CHANNELS = 256


@dataclass(frozen=True)
class MemoryPlan:
    """How a forward bounds its activation memory; every setting leaves the result unchanged.

    Attributes:
        heads_per_chunk: self-attention heads computed at a time in both branches (``None``: all).
        ffn_frames_per_chunk: latent frames the FFN processes at a time (``None``: all).
        samples_per_pass: batch rows per pass through the blocks, e.g. 1 to run the two CFG rows one after the
            other (``None``: the whole batch at once).
    """

    heads_per_chunk: int | None = None
    ffn_frames_per_chunk: int | None = None
    samples_per_pass: int | None = None

    def __post_init__(self) -> None:
        for name in ("heads_per_chunk", "ffn_frames_per_chunk", "samples_per_pass"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InputError(f"memory.{name}: expected a positive integer or None, got {value!r}")

    @classmethod
    def lean(cls) -> MemoryPlan:
        """The low-memory plan used for long clips: 5 heads and 16 latent frames at a time, full batch."""
        return cls(heads_per_chunk=5, ffn_frames_per_chunk=16)

    @classmethod
    def named(cls, name: str) -> MemoryPlan | None:
        """``"none"`` (None: everything at once), ``"lean"`` (:meth:`lean`), ``"lean-serial"`` (lean, and
        the batch rows, e.g. the two CFG rows, one after the other), or numbers ``"H,F"`` / ``"H,F,R"``: heads
        per chunk, FFN frames per chunk and batch rows per pass."""
        if name == "none":
            return None
        if name == "lean":
            return cls.lean()
        if name == "lean-serial":
            return dataclasses.replace(cls.lean(), samples_per_pass=1)
        parts = name.split(",")
        if len(parts) in (2, 3) and all(part.strip().isdigit() for part in parts):
            return cls(*(int(part) for part in parts))
        raise InputError(
            f"memory plan: {name!r} is not one of none, lean, lean-serial or numbers 'heads,frames[,rows]'"
        )


def _init_adaln_table(table: Tensor) -> None:
    """An adaLN table ``(n, D)``: ``N(0, 1/D)``."""
    init_param_(table, functools.partial(nn.init.normal_, std=table.shape[1] ** -0.5))


class Fp32Linear(nn.Linear):
    """A linear layer that computes in fp32 whatever its weights' dtype (weights upcast for the call): for the
    small modules outside the blocks, where bf16 rounding costs accuracy and fp32 costs nothing measurable.
    Same parameters and checkpoint keys as ``nn.Linear``."""

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias.float()
        return F.linear(x.float(), self.weight.float(), bias)


class PatchEmbed3d(nn.Module):
    """Per-token linear map of a ``(B, C, T, h, w)`` map to ``(B, M, D)`` fp32 tokens (patch size 1×1×1).

    The weight keeps the checkpoint's ``Conv3d`` layout ``(D, C, 1, 1, 1)`` under the key ``proj``.
    ``zero_init``: start at zero (the camera embedders, so the camera path starts silent).
    """

    def __init__(self, in_channels: int, hidden_size: int, *, zero_init: bool = False) -> None:
        super().__init__()
        self.zero_init = zero_init
        self.proj = nn.Conv3d(in_channels, hidden_size, kernel_size=1)

    @torch.no_grad()
    def init_weights(self) -> None:
        """Xavier-uniform weight (as a ``D × C`` matrix) and the Conv3d default bias, or zeros."""
        if self.zero_init:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)
            return
        init_param_(self.proj.weight, nn.init.xavier_uniform_)
        bound = 1 / math.sqrt(self.proj.in_channels)
        init_param_(self.proj.bias, functools.partial(nn.init.uniform_, a=-bound, b=bound))

    def forward(self, x_BCThw: Tensor) -> Tensor:
        tokens_BMC = x_BCThw.permute(0, 2, 3, 4, 1).flatten(1, 3).float()
        return F.linear(tokens_BMC, self.proj.weight.flatten(1).float(), self.proj.bias.float())


def timestep_sinusoid(t_X: Tensor, channels: int = TIMESTEP_CHANNELS, max_period: float = 10000.0) -> Tensor:
    """Sinusoid ``(X, channels)`` in fp32, ordered ``[cos | sin]``, frequencies ``exp(−ln(P)·i/half)``."""
    half = channels // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t_X.device) / half
    )
    args = t_X.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class TimestepEmbedder(nn.Module):
    """``Linear(256 → D) → SiLU → Linear(D → D)`` on the sinusoid of (already floored) timesteps, in fp32."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear_1 = Fp32Linear(TIMESTEP_CHANNELS, hidden_size)
        self.linear_2 = Fp32Linear(hidden_size, hidden_size)

    @torch.no_grad()
    def init_weights(self) -> None:
        """Weights ``N(0, 0.02²)``, zero biases."""
        init_linear(self.linear_1, std=0.02)
        init_linear(self.linear_2, std=0.02)

    def forward(self, t_X: Tensor) -> Tensor:
        return self.linear_2(F.silu(self.linear_1(timestep_sinusoid(t_X))))


class _Mlp(nn.Module):
    def __init__(self, in_features: int, hidden_size: int) -> None:
        super().__init__()
        self.fc1 = Fp32Linear(in_features, hidden_size)
        self.fc2 = Fp32Linear(hidden_size, hidden_size)

    @torch.no_grad()
    def init_weights(self) -> None:
        """Weights ``N(0, 0.02²)``, zero biases."""
        init_linear(self.fc1, std=0.02)
        init_linear(self.fc2, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class CaptionEmbedder(nn.Module):
    """Text features ``(B, L, C)`` → ``(B, L, D)`` in fp32: ``fc1 → GELU(tanh) → fc2`` (``y_proj``)."""

    def __init__(self, caption_channels: int, hidden_size: int) -> None:
        super().__init__()
        self.y_proj = _Mlp(caption_channels, hidden_size)

    def init_weights(self) -> None:
        self.y_proj.init_weights()

    def forward(self, text_BLC: Tensor) -> Tensor:
        return self.y_proj(text_BLC)


class SanaWMBlock(nn.Module):
    """One transformer block: ``forward(x_BMD, text_BLD, keep_BL, t0_BT6D, plucker_BMD, ctx)`` → ``x_BMD``."""

    def __init__(self, config: SanaWMConfig, index: int) -> None:
        super().__init__()
        dim = config.hidden_size
        self.scale_shift_table = nn.Parameter(torch.zeros(6, dim))
        self.plucker_proj = nn.Linear(dim, dim) if index < config.plucker_blocks else None
        if config.is_softmax_block(index):
            self.attn: GDNCameraAttention | SoftmaxCameraAttention = SoftmaxCameraAttention(
                dim, config.head_dim
            )
        else:
            self.attn = GDNCameraAttention(dim, config.head_dim, config.short_conv_kernel)
        self.cross_attn = CrossAttention(dim, config.cross_attn_heads)
        self.mlp = GLUMBConvTemp(dim, config.ffn_hidden, config.temporal_kernel)

    @torch.no_grad()
    def init_weights(self) -> None:
        """adaLN table ``N(0, 1/D)``, ``plucker_proj`` Xavier-uniform (the official constructor zeroes it, but
        its later Xavier pass over all linears overwrites that), then the branches' own init."""
        _init_adaln_table(self.scale_shift_table)
        if self.plucker_proj is not None:
            init_linear(self.plucker_proj)
        self.attn.init_weights()
        self.cross_attn.init_weights()
        self.mlp.init_weights()

    def forward(
        self,
        x_BMD: Tensor,
        text_BLD: Tensor,
        keep_BL: Tensor,
        t0_BT6D: Tensor,
        plucker_BMD: Tensor,
        ctx: BlockContext,
        cache: BlockCache | None = None,
    ) -> Tensor:
        """``x_BMD`` is the fp32 residual stream; without autograd it is updated in place. Chunk-causal
        (``ctx.layout``): ``cache`` is this block's part of a stream's cache."""
        dtype = weight_dtype(self.attn.qkv)  # what the branches compute in
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            self.scale_shift_table.float() + t0_BT6D.float()
        ).unbind(2)  # each (B, T, D)

        a_BMD = layer_norm_modulate(
            x_BMD, shift_msa, scale_msa, eps=LN_EPS, out_dtype=dtype, backend=ctx.backend
        )
        x_BMD = _gated_add(x_BMD, gate_msa, self.attn(a_BMD, ctx, cache))
        del a_BMD
        if self.plucker_proj is not None:
            x_BMD = _add(x_BMD, self.plucker_proj(plucker_BMD))
        x_BMD = _add(x_BMD, self.cross_attn(x_BMD.to(dtype), text_BLD, keep_BL, ctx.backend))
        m_BMD = layer_norm_modulate(
            x_BMD, shift_mlp, scale_mlp, eps=LN_EPS, out_dtype=dtype, backend=ctx.backend
        )
        ffn_BMD = self.mlp(
            m_BMD,
            ctx.grid,
            ctx.ffn_frames_per_chunk,
            ctx.backend,
            layout=ctx.layout,
            cache=cache,
            write_cache=ctx.write_cache,
        )
        return _gated_add(x_BMD, gate_mlp, ffn_BMD)


def _add(x_BMD: Tensor, y_BMD: Tensor) -> Tensor:
    """``x + y`` in ``x``'s dtype; in place when no autograd graph is being recorded."""
    if torch.is_grad_enabled():
        return x_BMD + y_BMD
    return x_BMD.add_(y_BMD)


def _gated_add(x_BMD: Tensor, gate_BTD: Tensor, y_BMD: Tensor) -> Tensor:
    """``x + gate_t·y`` with the per-frame gate broadcast over each frame's tokens, in ``x``'s dtype."""
    frames = gate_BTD.shape[1]
    x_BTSD, y_BTSD = x_BMD.unflatten(1, (frames, -1)), y_BMD.unflatten(1, (frames, -1))
    if torch.is_grad_enabled():
        return (x_BTSD + gate_BTD[:, :, None] * y_BTSD).flatten(1, 2)
    return x_BTSD.addcmul_(gate_BTD[:, :, None], y_BTSD).flatten(1, 2)


class FinalLayer(nn.Module):
    """Frame-aware ``LN → (1 + scale)·x + shift → Linear(D → C)``; shift, scale = table + raw ``t``."""

    def __init__(self, hidden_size: int, out_channels: int) -> None:
        super().__init__()
        self.scale_shift_table = nn.Parameter(torch.zeros(2, hidden_size))
        self.linear = Fp32Linear(hidden_size, out_channels)

    @torch.no_grad()
    def init_weights(self) -> None:
        """Table ``N(0, 1/D)``, Xavier-uniform linear with zero bias (not zero: as in the official model)."""
        _init_adaln_table(self.scale_shift_table)
        init_linear(self.linear)

    def forward(self, x_BMD: Tensor, t_BTD: Tensor) -> Tensor:
        """In fp32 whatever the weights' dtype (the output is the velocity the sampler integrates)."""
        table_BT2D = self.scale_shift_table.float() + t_BTD.float()[:, :, None]
        shift, scale = table_BT2D.unbind(2)  # each (B, T, D)
        x_BMD = layer_norm_modulate(x_BMD, shift, scale, eps=LN_EPS, out_dtype=torch.float32)
        return self.linear(x_BMD)


class SanaWMTransformer(nn.Module):
    """The stage-1 DiT. Build on ``torch.device("meta")`` and call :meth:`init_weights` after ``to_empty``, or
    build on a real device (initialised on construction), or load with ``checkpoint_io.load_transformer``."""

    def __init__(self, config: SanaWMConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.hidden_size
        self.t_embedder = TimestepEmbedder(dim)
        self.attention_y_norm = RMSNorm(dim, Y_NORM_EPS, fp32=True, init_value=Y_NORM_INIT)
        self.t_block = nn.Sequential(nn.SiLU(), Fp32Linear(dim, 6 * dim))
        self.x_embedder = PatchEmbed3d(config.in_channels, dim)
        self.y_embedder = CaptionEmbedder(config.caption_channels, dim)
        self.plucker_embedder = PatchEmbed3d(config.plucker_channels, dim, zero_init=True)
        self.raymap_embedder = PatchEmbed3d(3, dim, zero_init=True)  # in the checkpoint, never used
        self.blocks = nn.ModuleList(SanaWMBlock(config, i) for i in range(config.depth))
        self.final_layer = FinalLayer(dim, config.in_channels)
        if not self.x_embedder.proj.weight.is_meta:
            self.init_weights()

    def forward(
        self,
        latents: Tensor,
        timestep: Tensor,
        text: Tensor,
        text_mask: Tensor,
        camera_conditions: Tensor,
        chunk_plucker: Tensor,
        *,
        backend: Backend = "torch",
        bf16_softmax: bool = False,
        memory: MemoryPlan | None = None,
        chunks: ChunkLayout | None = None,
        cache: StreamCache | None = None,
        write_cache: bool = False,
        rope: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """Predict the velocity ``(B, C, T, h, w)``.

        Args:
            latents: noisy latents ``(B, C, T, h, w)``; frame 0 is the clean conditioning frame.
            timestep: per-frame timesteps ``(B, 1, T)`` in [0, 1000] (frame 0 = 0); floored to integers.
            text: text-encoder features ``(B, L, C)``.
            text_mask: ``(B, L)``, nonzero for real tokens, 0 for padding (at least one real token per row).
            camera_conditions: ``(B, T, 20)``: row-major relative camera-to-world pose (16) then
                ``[fx, fy, cx, cy]`` in latent-grid pixels.
            chunk_plucker: chunked Plücker map ``(B, 48, T, h, w)``.
            backend: implementation of the ops (``"reference"``, ``"torch"`` or ``"triton"``: forward-only GPU
                kernels, and cuDNN attention first), see ``sana_wm.ops``.
            bf16_softmax: run the softmax attentions with bf16 q/k/v even in an fp32 model (what diffusers
                0.42.1 does); only matters for fp32 models.
            memory: how to bound activation memory (:class:`MemoryPlan`); the result does not depend on it.
            chunks: chunk-causal execution (``sana_wm.models.causal``) over these chunks. Default: none for
                a bidirectional config; for a chunk-causal config (``config.chunk_size``) the config's chunks,
                each reading every earlier one.
            cache: a stream's :class:`~sana_wm.models.causal.StreamCache`: the latents continue the stream
                (one chunk, or ``chunks`` with their starts) and read what earlier chunks left in it; the
                model runs chunk-causal whatever its config.
            write_cache: with ``cache``, store this forward's chunks in it and advance the stream (the
                streaming sampler's clean timestep-0 pass).
            rope: the RoPE tables ``(cos_MP, sin_MP)`` of this forward's grid at its frame offset
                (``sana_wm.ops.rope.rope_tables``), when the caller has them as tensors (a replayed CUDA
                graph reads them from its input buffers; computed here they would be frozen into it).
        """
        check_backend(backend)
        self._check_inputs(latents, timestep, text, text_mask, camera_conditions, chunk_plucker)
        layout = self._layout(latents.shape[2], chunks, cache)
        memory = memory or MemoryPlan()
        per_pass = memory.samples_per_pass
        if per_pass is not None and latents.shape[0] > per_pass and cache is None:
            inputs = (latents, timestep, text, text_mask, camera_conditions, chunk_plucker)
            single = dataclasses.replace(memory, samples_per_pass=None)
            return torch.cat(
                [
                    self(
                        *(x[i : i + per_pass] for x in inputs),
                        backend=backend,
                        bf16_softmax=bf16_softmax,
                        memory=single,
                        chunks=layout,
                    )
                    for i in range(0, latents.shape[0], per_pass)
                ]
            )
        dtype = weight_dtype(self.blocks[0].attn.qkv)  # what the blocks' branches compute in
        batch, _, num_frames, height, width = latents.shape
        grid = (num_frames, height, width)

        # The modules outside the blocks compute in fp32 (Fp32Linear, RMSNorm(fp32=True)).
        x = self.x_embedder(latents)  # (B, M, D): the fp32 residual stream
        plucker = self.plucker_embedder(chunk_plucker).to(dtype)  # (B, M, D)
        t = self.t_embedder(timestep.to(torch.int64).flatten())  # (B·T, D); int64 floors t >= 0
        t0 = self.t_block(t).unflatten(0, (batch, num_frames)).unflatten(-1, (6, -1))  # (B, T, 6, D)
        t = t.unflatten(0, (batch, num_frames))  # (B, T, D)
        y = self.attention_y_norm(self.y_embedder(text)).to(dtype)  # (B, L, D)
        keep = text_mask != 0  # (B, L) bool

        if rope is None:
            offset = 0 if layout is None else layout.frame_offset
            rope = rope_tables(*grid, self.config.head_dim, device=latents.device, frame_offset=offset)
        cos, sin = rope
        rays = ray_transforms(camera_conditions, grid, cos, sin, self.config.head_dim)
        ctx = BlockContext(
            grid,
            cos,
            sin,
            rays,
            backend,
            bf16_softmax,
            memory.heads_per_chunk,
            memory.ffn_frames_per_chunk,
            layout,
            write_cache and cache is not None,
        )
        for i, block in enumerate(self.blocks):
            x = block(x, y, keep, t0, plucker, ctx, None if cache is None else cache.blocks[i])  # (B, M, D)
        if cache is not None and write_cache:
            assert layout is not None
            cache.advance(len(layout.starts), num_frames)

        x = self.final_layer(x, t)  # (B, M, C) fp32
        return x.unflatten(1, grid).permute(0, 4, 1, 2, 3).contiguous()  # (B, C, T, h, w)

    def _layout(
        self, num_frames: int, chunks: ChunkLayout | None, cache: StreamCache | None
    ) -> ChunkLayout | None:
        """The chunk layout of a forward (see :meth:`forward`'s ``chunks`` and ``cache``)."""
        if cache is not None:
            if len(cache.blocks) != len(self.blocks):
                raise InputError(
                    f"cache: made for {len(cache.blocks)} blocks, the model has {len(self.blocks)}"
                )
            layout = cache.layout((0,) if chunks is None else chunks.starts)
        elif chunks is not None:
            layout = chunks
        elif self.config.chunk_size is not None:
            starts = chunk_starts(num_frames, self.config.chunk_size, self.config.chunk_strategy)
            layout = ChunkLayout(tuple(starts))
        else:
            return None
        layout.bounds(num_frames)  # the chunks must fit the frames
        return layout

    def _check_inputs(
        self,
        latents: Tensor,
        timestep: Tensor,
        text: Tensor,
        text_mask: Tensor,
        camera: Tensor,
        plucker: Tensor,
    ) -> None:
        cfg = self.config
        if latents.ndim != 5 or latents.shape[1] != cfg.in_channels:
            raise InputError(f"latents: expected (B, {cfg.in_channels}, T, h, w), got {tuple(latents.shape)}")
        batch, _, num_frames, height, width = latents.shape
        expected = {
            "timestep": (timestep, (batch, 1, num_frames)),
            "text_mask": (text_mask, (batch, text.shape[1] if text.ndim == 3 else -1)),
            "camera_conditions": (camera, (batch, num_frames, CAMERA_CONDITION_CHANNELS)),
            "chunk_plucker": (plucker, (batch, cfg.plucker_channels, num_frames, height, width)),
        }
        if text.ndim != 3 or text.shape[0] != batch or text.shape[2] != cfg.caption_channels:
            raise InputError(
                f"text: expected (B={batch}, L, {cfg.caption_channels}), got {tuple(text.shape)}"
                " (squeeze the official (B, 1, L, C) layout to (B, L, C))"
            )
        for name, (tensor, shape) in expected.items():
            if tuple(tensor.shape) != shape:
                raise InputError(f"{name}: expected shape {shape}, got {tuple(tensor.shape)}")

    @torch.no_grad()
    def init_weights(self) -> None:
        """Official SANA-WM initialisation, deterministic given the torch seed (module order fixed) and
        independent of the device, dtype and sharding of the parameters.

        Here: timestep MLP, ``t_block`` and caption MLP weights ``N(0, 0.02²)`` with zero biases; text RMSNorm
        weight 0.01; ``x_embedder`` Xavier-uniform; ``plucker_embedder`` and ``raymap_embedder`` zero (the
        camera path starts silent); then each block's and the final layer's ``init_weights``. Like the
        official model this is not adaLN-zero: gates and the final layer start non-zero.

        On FSDP2-sharded parameters call it through ``sana_wm.train.parallel.init_weights`` (see
        ``attention.init_param_``).
        """
        self.t_embedder.init_weights()
        self.attention_y_norm.init_weights()
        init_linear(self.t_block[1], std=0.02)
        for embedder in (self.x_embedder, self.y_embedder, self.plucker_embedder, self.raymap_embedder):
            embedder.init_weights()
        for block in self.blocks:
            block.init_weights()
        self.final_layer.init_weights()
