"""Training data: the official SANA-WM zip layout, its reader, and the latent cache.

- :mod:`~sana_wm.data.layout`: file names, sidecar formats and writers.
- :mod:`~sana_wm.data.camera`: a clip's ``camera_conditions`` / ``chunk_plucker`` as the official reader
  builds them.
- :mod:`~sana_wm.data.dataset`: :class:`ZipLatentDataset`.
- :mod:`~sana_wm.data.latents`: :func:`cache_latents` (mp4 -> VAE latents).
"""

from sana_wm.data.camera import clip_camera_tensors
from sana_wm.data.dataset import ZipLatentDataset
from sana_wm.data.latents import cache_latents, frames_to_video
from sana_wm.data.layout import CameraTable, numeric_score, write_camera_sidecar

__all__ = [
    "CameraTable",
    "ZipLatentDataset",
    "cache_latents",
    "clip_camera_tensors",
    "frames_to_video",
    "numeric_score",
    "write_camera_sidecar",
]
