"""SANA-WM stage-1 transformer: a camera-controlled video DiT with hybrid frame-wise GDN / softmax attention.

Shape letters: ``B`` batch, ``C`` latent channels, ``T`` latent frames, ``h``/``w`` latent grid, ``M`` video
tokens (``T·h·w``, frame-major, then row, then column), ``D`` model width, ``L`` text tokens, ``K`` caption
channels, ``P`` RoPE pairs.

The model predicts the flow velocity ``v = noise − data`` for a whole clip in one call. Image conditioning
is "frame 0 clean with timestep 0": nothing else marks it. Camera control enters twice: the chunked Plücker
map is embedded once and added after every block's self-attention, and the raw camera conditions drive
per-token UCPE transforms in every block's camera branch.

State-dict keys and shapes equal diffusers' ``SanaWMTransformer3DModel`` (``t_embedder.linear_1/linear_2``);
the official checkpoint differs only by name (``t_embedder.mlp.0/mlp.2``), an extra ``y_embedder.y_embedding``
and ``pos_embed``, mapped by ``checkpoint_io``.

Precision: parameters may be bf16; fp32 is kept where diffusers 0.42.1 keeps it — timestep sinusoid, RMSNorm
variance, LayerNorm statistics, RoPE and UCPE arithmetic, GDN decay and scans, the SiLU output gate — and,
past diffusers, wherever it is cheap and matters: the residual stream ``x`` between and inside blocks is fp32
(each branch's output is added to it in fp32; only the branches' inputs are rounded to the weights' dtype),
and the small modules outside the blocks (patch, timestep and caption embedders, ``t_block``, the adaLN
tables, the final layer) compute in fp32 from upcast weights, so the velocity comes out in fp32. With bf16
weights and random-weight inputs this cuts the relative error against the fp32 model about threefold
(``BENCHMARKS.md``).
Timesteps are floored to integers before the sinusoid (the release has ``timestep_norm_scale_factor = 1``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from sana_wm.errors import InputError
from sana_wm.models.attention import BlockContext, DualBranchAttention, RMSNorm, ShortConv
from sana_wm.models.blocks import FinalLayer, SanaWMBlock
from sana_wm.models.camera_embed import ray_transforms
from sana_wm.models.config import SanaWMConfig
from sana_wm.models.embeddings import CaptionEmbedder, Fp32Linear, PatchEmbed3d, TimestepEmbedder
from sana_wm.ops import Backend, check_backend
from sana_wm.ops.rope import rope_tables

Y_NORM_EPS = 1e-5
CAMERA_CONDITION_CHANNELS = 20
# Official init of the shared output gate: zero weight and silu(bias) = 1, so the gate starts as identity.
OUTPUT_GATE_INIT_BIAS = 1.278464542761074


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


class SanaWMTransformer(nn.Module):
    """The stage-1 DiT. Build on ``torch.device("meta")`` and call :meth:`init_weights` after ``to_empty``, or
    build on a real device (initialised on construction), or load with ``checkpoint_io.load_transformer``.

    Set ``gradient_checkpointing = True`` to recompute each block in the backward pass.
    """

    def __init__(self, config: SanaWMConfig) -> None:
        super().__init__()
        self.config = config
        self.gradient_checkpointing = False
        dim = config.hidden_size
        self.t_embedder = TimestepEmbedder(dim)
        self.attention_y_norm = RMSNorm(dim, Y_NORM_EPS, fp32=True)
        self.t_block = nn.Sequential(nn.SiLU(), Fp32Linear(dim, 6 * dim))
        self.x_embedder = PatchEmbed3d(config.in_channels, dim)
        self.y_embedder = CaptionEmbedder(config.caption_channels, dim)
        self.plucker_embedder = PatchEmbed3d(config.plucker_channels, dim)
        self.raymap_embedder = PatchEmbed3d(3, dim)  # in the checkpoint, never used by the release
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
    ) -> Tensor:
        """Predict the velocity ``(B, C, T, h, w)``.

        Args:
            latents: noisy latents ``(B, C, T, h, w)``; frame 0 is the clean conditioning frame.
            timestep: per-frame timesteps ``(B, 1, T)`` in [0, 1000] (frame 0 = 0); floored to integers.
            text: text-encoder features ``(B, L, K)``.
            text_mask: ``(B, L)``, nonzero for real tokens, 0 for padding (at least one real token per row).
            camera_conditions: ``(B, T, 20)``: row-major relative camera-to-world pose (16) then
                ``[fx, fy, cx, cy]`` in latent-grid pixels.
            chunk_plucker: chunked Plücker map ``(B, 48, T, h, w)``.
            backend: implementation of the ops (``"reference"``, ``"torch"`` or ``"triton"``: forward-only GPU
                kernels, and cuDNN attention first), see ``sana_wm.ops``.
            bf16_softmax: run the softmax attentions with bf16 q/k/v even in an fp32 model (what diffusers
                0.42.1 does); only matters for fp32 models.
            memory: how to bound activation memory (:class:`MemoryPlan`); the result does not depend on it.
        """
        check_backend(backend)
        self._check_inputs(latents, timestep, text, text_mask, camera_conditions, chunk_plucker)
        memory = memory or MemoryPlan()
        per_pass = memory.samples_per_pass
        if per_pass is not None and latents.shape[0] > per_pass:
            inputs = (latents, timestep, text, text_mask, camera_conditions, chunk_plucker)
            single = dataclasses.replace(memory, samples_per_pass=None)
            return torch.cat(
                [
                    self(
                        *(x[i : i + per_pass] for x in inputs),
                        backend=backend,
                        bf16_softmax=bf16_softmax,
                        memory=single,
                    )
                    for i in range(0, latents.shape[0], per_pass)
                ]
            )
        dtype = self.blocks[0].attn.qkv.weight.dtype  # what the blocks' branches compute in
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

        cos, sin = rope_tables(*grid, self.config.head_dim, device=latents.device)  # (M, P) each
        rays = ray_transforms(camera_conditions, grid, cos, sin, self.config.head_dim)
        ctx = BlockContext(
            grid, cos, sin, rays, backend, bf16_softmax, memory.heads_per_chunk, memory.ffn_frames_per_chunk
        )
        for block in self.blocks:
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, y, keep, t0, plucker, ctx, use_reentrant=False)
            else:
                x = block(x, y, keep, t0, plucker, ctx)  # (B, M, D)

        x = self.final_layer(x, t)  # (B, M, C) fp32
        return x.unflatten(1, grid).permute(0, 4, 1, 2, 3).contiguous()  # (B, C, T, h, w)

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
                " (squeeze the official (B, 1, L, K) layout to (B, L, K))"
            )
        for name, (tensor, shape) in expected.items():
            if tuple(tensor.shape) != shape:
                raise InputError(f"{name}: expected shape {shape}, got {tuple(tensor.shape)}")

    @torch.no_grad()
    def init_weights(self) -> None:
        """Official SANA-WM initialisation, deterministic given the torch seed (module order fixed).

        Linears: Xavier-uniform weights, zero biases; ``x_embedder`` Xavier on the flattened weight (bias
        keeps the Conv3d default); timestep MLP, ``t_block`` and caption MLP weights ``N(0, 0.02²)``; adaLN
        tables ``randn / √D``; text RMSNorm weight 0.01 (``y_norm_scale_factor``); other norms 1; FFN convs
        PyTorch defaults. Delta-rule gates start "linear-attention equivalent": ``beta_proj`` weight 0 / bias
        5, ``gate_proj`` 0, ``A_log`` 0, ``dt_bias`` −5, identity short convs (last causal tap 1), output gate
        weight 0 with ``silu(bias) = 1``. The camera path starts silent: ``out_proj_cam``,
        ``plucker_embedder`` and ``raymap_embedder`` are zero, and the camera projections, norms and short
        conv are copied from the main branch (``init_cam_from_base``); ``plucker_proj`` gets Xavier (the
        official constructor zeroes it, but its later Xavier pass over all linears overwrites that). Note this
        is not adaLN-zero: like the official model, gates and the final layer start non-zero.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv2d | nn.Conv3d):
                module.reset_parameters()
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
        nn.init.xavier_uniform_(self.x_embedder.proj.weight.view(self.config.hidden_size, -1))
        for linear in (self.t_embedder.linear_1, self.t_embedder.linear_2, self.t_block[1]):
            nn.init.normal_(linear.weight, std=0.02)
        nn.init.normal_(self.y_embedder.y_proj.fc1.weight, std=0.02)
        nn.init.normal_(self.y_embedder.y_proj.fc2.weight, std=0.02)
        self.attention_y_norm.weight.fill_(0.01)
        for embedder in (self.plucker_embedder, self.raymap_embedder):
            nn.init.zeros_(embedder.proj.weight)
            nn.init.zeros_(embedder.proj.bias)
        scale = self.config.hidden_size**-0.5
        for block in self.blocks:
            block.scale_shift_table.copy_(torch.randn_like(block.scale_shift_table) * scale)
            _init_attention(block.attn)
        self.final_layer.scale_shift_table.copy_(torch.randn_like(self.final_layer.scale_shift_table) * scale)


def _init_attention(attn: DualBranchAttention) -> None:
    nn.init.zeros_(attn.beta_proj.weight)
    nn.init.constant_(attn.beta_proj.bias, 5.0)
    nn.init.zeros_(attn.gate_proj.weight)
    nn.init.zeros_(attn.gate_proj.bias)
    attn.A_log.zero_()
    attn.dt_bias.fill_(-5.0)
    attn.recall_gate.zero_()
    nn.init.zeros_(attn.output_gate.weight)
    nn.init.constant_(attn.output_gate.bias, OUTPUT_GATE_INIT_BIAS)
    nn.init.zeros_(attn.out_proj_cam.weight)
    nn.init.zeros_(attn.out_proj_cam.bias)
    q_w, k_w, v_w = attn.qkv.weight.chunk(3, dim=0)
    for cam, weight in ((attn.q_proj_cam, q_w), (attn.k_proj_cam, k_w), (attn.v_proj_cam, v_w)):
        cam.weight.copy_(weight)
        nn.init.zeros_(cam.bias)
    attn.q_norm_cam.weight.copy_(attn.q_norm.weight)
    attn.k_norm_cam.weight.copy_(attn.k_norm.weight)
    for name in ("conv_k", "conv_k_cam"):
        conv = getattr(attn, name, None)
        if isinstance(conv, ShortConv):
            conv.weight.zero_()
            conv.weight[:, 0, -1] = 1.0
