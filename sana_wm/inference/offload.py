"""Keeping the large components off the GPU while they are not in use.

Modes (``--offload``):

- ``"none"``: every component lives on the compute device.
- ``"model"``: components live on the CPU; each is moved to the GPU whole for its stage only (text encoder,
  then VAE encoder, then transformer, then VAE decoder), so the peak is the largest component plus its
  activations.
- ``"group"``: like ``"model"`` for the text encoder and VAE; the transformer stays on the CPU and its blocks
  are streamed to the GPU one at a time, the next block's copy overlapping the current block's compute
  (diffusers' ``apply_group_offloading``, block level, on a CUDA side stream). The peak is then about one
  block of weights plus activations, at the cost of a host-to-device copy of all weights every model call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch
from torch import nn

from sana_wm.inference.request import OffloadMode
from sana_wm.models import MemoryPlan

ALLOC_CONF = "PYTORCH_CUDA_ALLOC_CONF"


def prefer_expandable_segments(mode: str) -> bool:
    """When offloading (``mode`` not ``"none"``), ask PyTorch's CUDA caching allocator for expandable segments
    unless the user configured it already.

    With blocks streamed in and out, fixed-size cached segments leave reserved-but-unused memory behind
    (BENCHMARKS.md measures how much). Takes effect only before CUDA is first used in the process (the
    allocator reads the setting once); returns whether it was set here.
    """
    if mode == "none" or ALLOC_CONF in os.environ or torch.cuda.is_initialized():
        return False
    os.environ[ALLOC_CONF] = "expandable_segments:True"
    return True


@contextlib.contextmanager
def on_device(module: nn.Module, device: torch.device, *, offload: bool) -> Iterator[None]:
    """Run the block with ``module`` on ``device``; with ``offload`` move it to the CPU again afterwards."""
    if offload:
        module.to(device)
    try:
        yield
    finally:
        if offload:
            module.to("cpu")
            if device.type == "cuda":
                torch.cuda.empty_cache()


def enable_block_streaming(model: nn.Module, device: torch.device) -> None:
    """Stream ``model``'s ``nn.ModuleList`` / ``nn.Sequential`` children to ``device`` one block at a time.

    The model must be on the CPU; its remaining small modules (embedders, final layer) are moved to ``device``
    at the start of each call. After this the model must not be moved with ``.to()``.
    """
    # diffusers is otherwise only imported by sana_wm.vae; its offloading hooks work on any nn.Module.
    from diffusers.hooks import apply_group_offloading

    apply_group_offloading(
        model,
        onload_device=device,
        offload_device=torch.device("cpu"),
        offload_type="block_level",
        num_blocks_per_group=1,
        non_blocking=device.type == "cuda",
        use_stream=device.type == "cuda",
    )


LEAN_TOKENS = 40_000  # latent tokens per sample from which the transformer runs with MemoryPlan.lean()


def default_memory_plan(offload: OffloadMode, latents_BCThw: torch.Size) -> MemoryPlan | None:
    """The transformer's memory plan when the pipeline is given none: with ``offload="group"`` the lean plan
    with the CFG rows one after the other; else the lean plan from :data:`LEAN_TOKENS` tokens per sample
    (321 frames at 704 x 1280 has 36,080), else none."""
    if offload == "group":
        return MemoryPlan.named("lean-serial")
    tokens = latents_BCThw[2] * latents_BCThw[3] * latents_BCThw[4]
    return MemoryPlan.lean() if tokens >= LEAN_TOKENS else None
