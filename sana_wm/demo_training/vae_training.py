"""The demo VAE: a small ``AutoencoderKLLTX2Video`` trained from scratch on rendered clips, and the latent
cache of the DiT phase.

Shape letters: ``B`` batch, ``F`` pixel frames, ``H``/``W`` pixels, ``C`` latent channels, ``T`` latent
frames, ``h``/``w`` latent grid.

Training step: a batch of random ``window``-frame windows (each randomly mirrored and/or reversed), encoded
to the diagonal-Gaussian posterior, a posterior sample decoded, and

    loss = L1(x̂, x) + grad_weight · (L1(∂x x̂, ∂x x) + L1(∂y x̂, ∂y x)) + kl_weight · mean KL(q ‖ N(0, I))

(per-element means; the image-gradient term keeps edges, the small KL keeps the latent space smooth). The
learning rate warms up linearly, then follows a cosine to 10 % over the time budget (not a step count, so the
schedule ends when the budget does).
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable

import numpy as np
import torch
from diffusers import AutoencoderKLLTX2Video
from torch import Tensor

from sana_wm.demo_training.data import VARIANTS, RenderedClip, camera_tensors, to_video, variant
from sana_wm.demo_training.recipe import DemoRecipe, vae_config

log = logging.getLogger("sana_wm")


def build_vae(recipe: DemoRecipe, seed: int) -> AutoencoderKLLTX2Video:
    """A freshly initialised demo VAE (fp32, CPU), deterministic given ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderKLLTX2Video(**vae_config(recipe))


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, nothing on the CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def lr_factor(step: int, elapsed_fraction: float, warmup: int, floor: float = 0.1) -> float:
    """Linear warm-up over ``warmup`` steps times a cosine from 1 to ``floor`` over the elapsed time."""
    warm = min(1.0, (step + 1) / max(1, warmup))
    progress = min(1.0, max(0.0, elapsed_fraction))
    return warm * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def vae_loss(vae: AutoencoderKLLTX2Video, video_B3FHW: Tensor, recipe: DemoRecipe) -> dict[str, Tensor]:
    """The training loss of one batch (module docstring) and its terms, fp32 scalars."""
    posterior = vae.encode(video_B3FHW).latent_dist
    mean, logvar = posterior.mean.float(), posterior.logvar.float()
    z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
    recon = vae.decode(z.to(video_B3FHW.dtype)).sample.float()
    target = video_B3FHW.float()
    l1 = (recon - target).abs().mean()
    grad = (recon.diff(dim=-1) - target.diff(dim=-1)).abs().mean()
    grad = grad + (recon.diff(dim=-2) - target.diff(dim=-2)).abs().mean()
    kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).mean()
    total = l1 + recipe.vae_grad_weight * grad + recipe.vae_kl_weight * kl
    return {"loss": total, "l1": l1.detach(), "grad": grad.detach(), "kl": kl.detach()}


def random_windows(
    clips: list[RenderedClip], batch: int, window: int, rng: random.Random, device: torch.device
) -> Tensor:
    """``batch`` random ``window``-frame windows ``(B, window, H, W, 3)`` uint8 on ``device``, each randomly
    mirrored and/or reversed (on the device: the host only slices)."""
    out = []
    for _ in range(batch):
        clip = clips[rng.randrange(len(clips))]
        frames = clip.frames_FHW3
        start = rng.randrange(frames.shape[0] - window + 1)
        piece = frames[start : start + window].to(device, non_blocking=True)
        if rng.random() < 0.5:
            piece = piece.flip(2)
        if rng.random() < 0.5:
            piece = piece.flip(0)
        out.append(piece)
    return torch.stack(out)


def train_vae(
    vae: AutoencoderKLLTX2Video,
    clips: list[RenderedClip],
    recipe: DemoRecipe,
    *,
    device: torch.device,
    seconds: float,
    more_clips: Callable[[], list[RenderedClip]] | None = None,
) -> dict[str, float]:
    """Train ``vae`` in place on ``device`` for ``seconds`` (or ``recipe.vae_max_steps``); ``more_clips`` is
    polled for clips that arrive meanwhile (CPU renders). Returns the final metrics."""
    vae.to(device).train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    rng = random.Random(recipe.seed)
    begin = last_log = time.perf_counter()
    step, window = 0, recipe.vae_window_frames
    running: dict[str, float] = {}
    while step < recipe.vae_max_steps:
        elapsed = time.perf_counter() - begin
        if step > 0 and elapsed >= seconds:
            break
        if more_clips is not None and step % 20 == 0:
            clips.extend(more_clips())
        for group in optimizer.param_groups:
            group["lr"] = recipe.vae_lr * lr_factor(step, elapsed / seconds, recipe.vae_warmup_steps)
        video = to_video(random_windows(clips, recipe.vae_batch, window, rng, device), device)
        with autocast(device):
            terms = vae_loss(vae, video, recipe)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        norm = torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        step += 1
        for key, value in (*terms.items(), ("grad_norm", norm)):
            number = float(value.detach())
            running[key] = 0.9 * running.get(key, number) + 0.1 * number
        if time.perf_counter() - last_log > 15 or step == 1:
            last_log = time.perf_counter()
            log.info(
                "vae step %d  %.0f s  loss %.4f  l1 %.4f  grad %.4f  kl %.2f  gnorm %.2f  clips %d",
                step,
                last_log - begin,
                *(running[k] for k in ("loss", "l1", "grad", "kl", "grad_norm")),
                len(clips),
            )
    vae.eval()
    return {
        "vae_steps": step,
        "vae_seconds": time.perf_counter() - begin,
        **{f"vae_{k}": v for k, v in running.items()},
    }


@torch.no_grad()
def encode_clips(
    vae: AutoencoderKLLTX2Video, clips: list[RenderedClip], recipe: DemoRecipe, device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    """Raw latents (posterior mode) of every clip's four variants, with their camera tensors.

    Returns ``latents (N, C, T, h, w)``, ``camera (N, T, 20)``, ``plucker (N, 48, T, h, w)``, float32 CPU,
    ``N = 4 · len(clips)`` in clip-major, :data:`VARIANTS` order.
    """
    height, width = recipe.settings.height, recipe.settings.width
    per_batch = max(1, recipe.encode_batch // len(VARIANTS))
    latents, cameras, pluckers = [], [], []
    for start in range(0, len(clips), per_batch):
        # Each clip crosses to the device once; its variants are flipped there.
        jobs = []
        for clip in clips[start : start + per_batch]:
            on_device = RenderedClip(clip.key, clip.frames_FHW3.to(device), clip.c2w_F44, clip.intrinsics_F4)
            jobs += [variant(on_device, *v) for v in VARIANTS]
        video = to_video(torch.stack([frames for frames, _, _ in jobs]), device)
        with autocast(device):
            z = vae.encode(video).latent_dist.mode()
        latents.append(z.float().cpu())
        for _, c2w, intrinsics in jobs:
            camera, plucker = camera_tensors(c2w, intrinsics, height, width)
            cameras.append(camera)
            pluckers.append(plucker)
    return torch.cat(latents), torch.stack(cameras), torch.stack(pluckers)


def set_latent_stats(vae: AutoencoderKLLTX2Video, raw_NCThw: Tensor) -> Tensor:
    """Store the per-channel mean and std of the raw latents in the VAE (rounded to fp16, the shipped
    precision) and return the latents normalised with exactly those numbers: ``(z - mean) / std``."""
    mean = raw_NCThw.mean(dim=(0, 2, 3, 4)).half().float()
    std = raw_NCThw.std(dim=(0, 2, 3, 4)).clamp_min(1e-4).half().float()
    vae.latents_mean.copy_(mean.to(vae.latents_mean))
    vae.latents_std.copy_(std.to(vae.latents_std))
    scale = float(vae.config.scaling_factor)
    return (raw_NCThw - mean.view(1, -1, 1, 1, 1)) * scale / std.view(1, -1, 1, 1, 1)


@torch.no_grad()
def reconstruction_psnr(
    vae: AutoencoderKLLTX2Video, clips: list[RenderedClip], device: torch.device
) -> float:
    """Mean PSNR (dB, 8-bit pixels) of whole clips encoded (posterior mode) and decoded."""
    values = []
    for clip in clips:
        video = to_video(clip.frames_FHW3[None], device)
        with autocast(device):
            recon = vae.decode(vae.encode(video).latent_dist.mode()).sample
        pixels = ((recon.float().clamp(-1, 1) + 1) * 127.5).round()
        mse = ((pixels - (video + 1) * 127.5) ** 2).mean().item()
        values.append(10 * np.log10(255.0**2 / max(mse, 1e-10)))
    return float(np.mean(values))
