"""The demo VAE: a small ``AutoencoderKLLTX2Video`` trained from scratch on rendered clips, and the latent
cache of the DiT phase.

Shape letters: ``B`` batch, ``F`` pixel frames, ``H``/``W`` pixels, ``C`` latent channels, ``T`` latent
frames, ``h``/``w`` latent grid.

Training step: a batch of random single frames (the first ``image_fraction`` of the time: an image costs an
eighth of a window, so colour and layout are learnt from many more pictures) or random ``window``-frame
windows (each randomly mirrored and/or reversed), encoded to the diagonal-Gaussian posterior, a posterior
sample decoded, and

    loss = L1(x̂, x) + grad_weight · (L1(∂x x̂, ∂x x) + L1(∂y x̂, ∂y x)) + lowpass_weight · L1(B(x̂), B(x))
           + chroma_weight · L1(C(B(x̂)), C(B(x))) + kl_weight · mean KL(q ‖ N(0, I))

with ``B`` the means of 8 x 8 pixel blocks and ``C`` a pixel's departure from grey (RGB minus its mean);
per-element means throughout. The image-gradient term keeps edges, the block terms weight brightness and
colour: an autoencoder learns its output's directions in order of their variance, so without them the
chroma directions (small next to brightness) arrive last, and a short run ends with a two-tone palette.
The small KL keeps the latent space smooth. The
learning rate warms up linearly, then follows a cosine to 10 % over the time budget (not a step count, so the
schedule ends when the budget does).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Callable

import numpy as np
import torch
from diffusers import AutoencoderKLLTX2Video
from torch import Tensor

from demo_training.data import VARIANTS, RenderedClip, camera_tensors, to_video, variant
from demo_training.recipe import DemoRecipe, vae_config
from sana_wm.errors import InputError

log = logging.getLogger("sana_wm")


def build_vae(recipe: DemoRecipe, seed: int) -> AutoencoderKLLTX2Video:
    """A freshly initialised demo VAE (fp32, CPU), deterministic given ``seed`` (diffusers' initialisation;
    :func:`init_for_training` adjusts it from the data)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoencoderKLLTX2Video(**vae_config(recipe))


@torch.no_grad()
def init_for_training(vae: AutoencoderKLLTX2Video, clips: list[RenderedClip]) -> None:
    """Start the decoder at the data's mean colour and the posterior nearly deterministic.

    Why: with random output weights the decoder's first outputs are noise uncorrelated with the target, and
    the fastest way to cut the loss is to silence its dependence on the latent; the per-location RMS norms
    (no mean subtraction) then let a constant component take over the residual stream, and the autoencoder
    sits at "mean colour" for hundreds of steps. Zero output weights with the mean colour as bias start it
    where that collapse would end, with the latent path intact. The log-variance channel starts at -4
    (posterior std 0.14) so that the sampling noise does not drown the young latents either.
    """
    mean_rgb = torch.stack([c.frames_FHW3.float().mean(dim=(0, 1, 2)) for c in clips]).mean(0) / 127.5 - 1
    conv_out = vae.decoder.conv_out.conv
    patch = conv_out.out_channels // 3  # output channels are (rgb, patch_t, patch_y, patch_x) flattened
    conv_out.weight.zero_()
    conv_out.bias.copy_(mean_rgb.repeat_interleave(patch).to(conv_out.bias))
    vae.encoder.conv_out.conv.bias[-1] = -4.0  # the last encoder channel is the shared log-variance


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
    recon_low, target_low = _box8(recon), _box8(target)
    low = (recon_low - target_low).abs().mean()
    chroma = (_chroma(recon_low) - _chroma(target_low)).abs().mean()
    total = (
        l1
        + recipe.vae_grad_weight * grad
        + recipe.vae_lowpass_weight * low
        + recipe.vae_chroma_weight * chroma
        + recipe.vae_kl_weight * kl
    )
    terms = {"l1": l1, "grad": grad, "low": low, "chroma": chroma, "kl": kl}
    return {"loss": total, **{k: v.detach() for k, v in terms.items()}}


def _chroma(video_B3FHW: Tensor) -> Tensor:
    """Each pixel's departure from grey (RGB minus its channel mean)."""
    return video_B3FHW - video_B3FHW.mean(dim=1, keepdim=True)


def _box8(video_B3FHW: Tensor) -> Tensor:
    """Means of 8 x 8 pixel blocks of every frame: the colour and brightness the latent must carry."""
    return torch.nn.functional.avg_pool3d(video_B3FHW, kernel_size=(1, 8, 8))


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
    init_for_training(vae, clips)
    vae.to(device).train()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=recipe.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    rng = random.Random(recipe.seed)
    begin = last_log = time.perf_counter()
    step, image_steps = 0, 0
    running: dict[str, float] = {}
    while step < recipe.vae_max_steps:
        elapsed = time.perf_counter() - begin
        if step > 0 and elapsed >= seconds:
            break
        if more_clips is not None and step % 20 == 0:
            clips.extend(more_clips())
        for group in optimizer.param_groups:
            group["lr"] = recipe.vae_lr * lr_factor(step, elapsed / seconds, recipe.vae_warmup_steps)
        fraction = recipe.vae_image_fraction
        images = elapsed < fraction * seconds and step < fraction * recipe.vae_max_steps
        if images:
            image_steps += 1
            frames = random_windows(clips, recipe.vae_image_batch, 1, rng, device)
        else:
            frames = random_windows(clips, recipe.vae_batch, recipe.vae_window_frames, rng, device)
        video = to_video(frames, device)
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
                "vae step %d (%s)  %.0f s  loss %.4f  l1 %.4f  grad %.4f  low %.4f  chroma %.4f  kl %.2f  "
                "gnorm %.2f  clips %d",
                step,
                "images" if images else "windows",
                last_log - begin,
                *(running[k] for k in ("loss", "l1", "grad", "low", "chroma", "kl", "grad_norm")),
                len(clips),
            )
    vae.eval()
    return {
        "vae_steps": step,
        "vae_image_steps": image_steps,
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
    return normalise(vae, raw_NCThw)


def normalise(vae: AutoencoderKLLTX2Video, raw_NCThw: Tensor) -> Tensor:
    """Raw latents (CPU) normalised with the VAE's stored statistics, as ``VideoVAE.normalize`` does."""
    mean = vae.latents_mean.detach().float().cpu().view(1, -1, 1, 1, 1)
    std = vae.latents_std.detach().float().cpu().view(1, -1, 1, 1, 1)
    return (raw_NCThw - mean) * float(vae.config.scaling_factor) / std


def load_vae(folder: str | os.PathLike[str], recipe: DemoRecipe) -> AutoencoderKLLTX2Video:
    """A saved demo VAE (``save_pretrained`` folder) in fp32, checked against the recipe's architecture."""
    vae = AutoencoderKLLTX2Video.from_pretrained(str(folder), torch_dtype=torch.float32)
    wanted = vae_config(recipe)
    differing = sorted(k for k, v in wanted.items() if _plain(vae.config[k]) != _plain(v))
    if differing:
        raise InputError(
            f"--init_from: the VAE in {folder} differs from the recipe in {', '.join(differing)}"
        )
    return vae.eval()


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple | list) else value


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
