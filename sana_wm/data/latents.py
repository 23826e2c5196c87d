"""Fill the latent shards of a dataset: encode every clip's ``<key>.mp4`` with a video VAE.

For each raw shard ``RAW/<stem>.zip`` holding ``<key>.mp4`` members, writes ``LATENT/<stem>.zip`` with
one ``<key>.npz`` per clip: array ``z``, the VAE's normalised latents in (C, T, h, w) layout. Frames are
decoded from the mp4 as RGB uint8 and mapped to [-1, 1] by ``x / 127.5 - 1`` (:func:`frames_to_video`).
A latent shard that already exists is kept (so an interrupted run resumes), unless ``overwrite``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from sana_wm.data.layout import LATENT_KEY, npz_bytes, write_zip
from sana_wm.errors import InputError
from sana_wm.utils.video_io import read_video

log = logging.getLogger(__name__)

VIDEO_SUFFIX = ".mp4"


def frames_to_video(frames_FHW3: np.ndarray) -> torch.Tensor:
    """RGB uint8 frames (F, H, W, 3) -> float32 video (1, 3, F, H, W) in [-1, 1]."""
    video = torch.from_numpy(np.ascontiguousarray(frames_FHW3)).to(torch.float32) / 127.5 - 1.0
    return video.permute(3, 0, 1, 2).unsqueeze(0)


def read_clip_video(raw_zip: str | os.PathLike[str], member: str) -> np.ndarray:
    """Decode the mp4 ``member`` of ``raw_zip`` into RGB uint8 frames (F, H, W, 3)."""
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(raw_zip) as archive:
            path = Path(archive.extract(member, tmp))
        return read_video(path)[0]


def cache_latents(
    raw_dir: str | os.PathLike[str],
    latent_dir: str | os.PathLike[str],
    encode: Callable[[torch.Tensor], torch.Tensor],
    *,
    latent_dtype: np.dtype = np.float32,
    overwrite: bool = False,
) -> list[Path]:
    """Encode every raw shard's clips into the latent shard of the same name.

    Args:
        raw_dir: directory of raw shards (``*.zip`` with ``<key>.mp4`` members).
        latent_dir: where the latent shards go (created if needed).
        encode: pixels (1, 3, F, H, W) in [-1, 1] -> normalised latents (1, C, T, h, w), e.g.
            :meth:`sana_wm.vae.VideoVAE.encode_video` (F must be 8k + 1, H and W multiples of 32).
        latent_dtype: dtype the latents are stored in (float32 or float16).
        overwrite: re-encode shards whose latent zip already exists.

    Returns:
        The latent shards written (existing ones kept are not listed).
    """
    raw_dir, latent_dir = Path(raw_dir), Path(latent_dir)
    shards = sorted(raw_dir.glob("*.zip"))
    if not shards:
        raise InputError(f"{raw_dir}: no raw shards (*.zip) found")
    written = []
    for raw_zip in shards:
        out = latent_dir / raw_zip.name
        if out.exists() and not overwrite:
            log.info("keeping %s (exists)", out)
            continue
        with zipfile.ZipFile(raw_zip) as archive:
            videos = [name for name in archive.namelist() if name.endswith(VIDEO_SUFFIX)]
        # A generator, so the shard is written one clip at a time (memory does not grow with the shard).
        write_zip(out, (_encode_member(raw_zip, name, encode, latent_dtype) for name in videos))
        log.info("wrote %s: %d clips", out, len(videos))
        written.append(out)
    return written


def _encode_member(
    raw_zip: Path, name: str, encode: Callable[[torch.Tensor], torch.Tensor], latent_dtype: np.dtype
) -> tuple[str, bytes]:
    frames = read_clip_video(raw_zip, name)
    try:
        z = encode(frames_to_video(frames))
    except InputError as err:
        raise InputError(f"{raw_zip}:{name}: {err}") from err
    z_CThw = z[0].detach().to("cpu", torch.float32).numpy().astype(latent_dtype)
    return name[: -len(VIDEO_SUFFIX)] + ".npz", npz_bytes(**{LATENT_KEY: z_CThw})


def cache_dataset_latents(
    root: str | os.PathLike[str],
    vae_path: str | os.PathLike[str],
    *,
    raw_dir: str | os.PathLike[str] | None = None,
    latent_dir: str | os.PathLike[str] | None = None,
    device: str | None = None,
    dtype: str = "float32",
    latent_dtype: str = "float32",
    overwrite: bool = False,
) -> tuple[list[Path], Path]:
    """``sana-wm cache-latents``: load the LTX-2-family VAE at ``vae_path`` (a VAE folder, or a model folder
    or repository with ``vae/``) and :func:`cache_latents` ``root/raw`` into ``root/latents`` (or the given
    folders). Returns the written shards and the latent folder."""
    from sana_wm.errors import InputError
    from sana_wm.utils.device import DTYPES, resolve_device
    from sana_wm.vae import VideoVAE

    raw = Path(raw_dir) if raw_dir else Path(root) / "raw"
    latents = Path(latent_dir) if latent_dir else Path(root) / "latents"
    if not raw.is_dir():
        raise InputError(f"DIR: {raw} is not a directory of raw shards")
    local = Path(vae_path)
    vae = VideoVAE.from_pretrained(
        vae_path,
        dtype=DTYPES[dtype],
        device=resolve_device(device),
        local_files_only=local.exists(),
        subfolder=None if (local / "config.json").is_file() else "vae",
    )
    written = cache_latents(
        raw, latents, vae.encode_video, latent_dtype=np.dtype(latent_dtype), overwrite=overwrite
    )
    return written, latents
