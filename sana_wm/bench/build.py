"""What both sides of a transformer benchmark run on: random weights, one random clip, the diffusers peer.

Shape letters: docs/conventions.md.

Weights are the official init plus a small perturbation of every parameter (so the zero-initialised camera
paths matter), rounded to bf16 values; inputs are rounded to bf16 values too, so fp32 and bf16 runs, ours and
the peer's, all see identical numbers and their differences measure activation precision only.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from sana_wm.models import SanaWMConfig, SanaWMTransformer

if TYPE_CHECKING:
    from diffusers import SanaWMTransformer3DModel

DEFAULT_TEXT_LEN = 300


def diffusers_kwargs(cfg: SanaWMConfig) -> dict[str, Any]:
    """Constructor arguments of diffusers' ``SanaWMTransformer3DModel`` for our config."""
    return {
        "in_channels": cfg.in_channels,
        "num_layers": cfg.depth,
        "hidden_size": cfg.hidden_size,
        "num_attention_heads": cfg.cross_attn_heads,
        "softmax_every_n": cfg.softmax_every_n,
        "linear_head_dim": cfg.head_dim,
        "t_kernel_size": cfg.temporal_kernel,
        "conv_kernel_size": cfg.short_conv_kernel,
        "chunk_plucker_channels": cfg.plucker_channels,
        "chunk_plucker_post_attn_blocks": cfg.plucker_blocks,
        "caption_channels": cfg.caption_channels,
        "mlp_ratio": cfg.mlp_ratio,
    }


def make_inputs(
    cfg: SanaWMConfig,
    batch: int,
    frames: int,
    height: int,
    width: int,
    seed: int,
    text_len: int = DEFAULT_TEXT_LEN,
) -> dict[str, torch.Tensor]:
    """One clip on the CPU in fp32, every value already representable in bf16.

    ``frames``, ``height``, ``width`` are latent sizes. Per-frame timesteps 742.5 with frame 0 at 0; text of
    ``text_len`` tokens, the first sample's padded after 40 % of them; a forward walk with a slow yaw and a
    small bob relative to frame 0, intrinsics of a 60° horizontal FoV; random latents and Plücker map.
    """
    gen = torch.Generator().manual_seed(seed)
    timestep = torch.full((batch, 1, frames), 742.5)
    timestep[:, :, 0] = 0.0
    text_mask = torch.ones(batch, text_len)
    text_mask[0, max(1, int(0.4 * text_len)) :] = 0.0
    pose = torch.eye(4).repeat(batch, frames, 1, 1)
    k = torch.arange(frames, dtype=torch.float32)
    yaw = 0.02 * k
    pose[:, :, 0, 0], pose[:, :, 0, 2] = torch.cos(yaw), torch.sin(yaw)
    pose[:, :, 2, 0], pose[:, :, 2, 2] = -torch.sin(yaw), torch.cos(yaw)
    pose[:, :, 0, 3], pose[:, :, 1, 3], pose[:, :, 2, 3] = 0.01 * k, 0.02 * torch.sin(k), 0.2 * k
    focal = 0.5 * width / math.tan(math.radians(30.0))
    intrinsics = torch.tensor([focal, focal, width / 2, height / 2]).expand(batch, frames, 4)
    inputs = {
        "latents": torch.randn(batch, cfg.in_channels, frames, height, width, generator=gen),
        "timestep": timestep,
        "text": torch.randn(batch, text_len, cfg.caption_channels, generator=gen),
        "text_mask": text_mask,
        "camera_conditions": torch.cat([pose.flatten(2), intrinsics], dim=-1),
        "chunk_plucker": torch.randn(batch, cfg.plucker_channels, frames, height, width, generator=gen),
    }
    return {k: v if k == "timestep" else v.bfloat16().float() for k, v in inputs.items()}


def cast_inputs(
    inputs: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """``inputs`` on ``device``, every tensor but the timesteps in ``dtype``."""
    return {k: v.to(device) if k == "timestep" else v.to(device, dtype) for k, v in inputs.items()}


def build_ours(cfg: SanaWMConfig, device: torch.device, seed: int) -> SanaWMTransformer:
    """Meta construction, ``to_empty`` on the device, official init, every parameter += N(0, 0.02²), then
    rounded to bf16 values so that the fp32 and bf16 runs share identical weights. fp32, eval mode."""
    with torch.device("meta"):
        model = SanaWMTransformer(cfg)
    model.to_empty(device=device)
    torch.manual_seed(seed)
    model.init_weights()
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.02 * torch.randn(param.shape, generator=gen, device=device))
            param.copy_(param.bfloat16().float())
    return model.eval()


def build_peer(
    cfg: SanaWMConfig, state_dict: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype
) -> SanaWMTransformer3DModel:
    """diffusers' ``SanaWMTransformer3DModel`` for ``cfg`` on ``device`` in ``dtype``, loaded strictly from
    our ``state_dict`` (the checkpoint layouts are identical)."""
    from diffusers import SanaWMTransformer3DModel
    from diffusers.utils import logging as diffusers_logging

    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # .to(dtype) warns that no module is kept in fp32; none must be
    try:
        with torch.device(device):
            peer = SanaWMTransformer3DModel(**diffusers_kwargs(cfg)).to(dtype).eval()
    finally:
        diffusers_logging.set_verbosity(verbosity)
    peer.load_state_dict(state_dict, strict=True)
    return peer


def peer_call(peer: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> Callable[[], torch.Tensor]:
    """A no-argument call of the peer on ``inputs`` (text in its ``(B, 1, L, K)`` layout) → velocity."""

    def call() -> torch.Tensor:
        return peer(
            inputs["latents"],
            inputs["timestep"],
            inputs["text"][:, None],
            encoder_attention_mask=inputs["text_mask"],
            camera_conditions=inputs["camera_conditions"],
            chunk_plucker=inputs["chunk_plucker"],
            return_dict=False,
        )[0]

    return call


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|a − b| / |b|`` (Frobenius norms), computed in fp64."""
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm()).item()


def max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max|a − b| / max|b|``."""
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max()).item()


def errors(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Both relative errors of ``a`` against the reference ``b``."""
    return {"max_rel": max_rel(a, b), "rel_l2": rel_l2(a, b)}


def free(device: torch.device) -> None:
    """Collect garbage and, on CUDA, return cached blocks to the driver."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def materialize(
    module: torch.nn.Module, device: torch.device, dtype: torch.dtype, seed: int
) -> torch.nn.Module:
    """A ``meta`` module (no buffers) on ``device`` in ``dtype`` with small random values, fan-in scaled."""
    module = module.to(dtype=dtype).to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            std = 1.0 / math.sqrt(param.shape[1]) if param.ndim > 1 else 0.02
            param.normal_(0.0, std, generator=generator)
    return module.eval()
