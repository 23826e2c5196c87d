"""Training samples from the official SANA-WM zip layout (:mod:`sana_wm.data.layout`).

:class:`ZipLatentDataset` lists every clip that has both a ``<key>.json`` in a raw shard and a
``<key>.npz`` in the latent shard of the same name (raw shards in sorted file order, clips in zip order),
optionally filtered by score sidecars and repeated, and reads one clip per index: latents, caption and the
camera tensors of :func:`sana_wm.data.camera.clip_camera_tensors` (metric scale, relativisation, intrinsics
to the latent grid, exactly as the official reader). Reading is a pure function of the index (and
``seed``), so any worker can read any sample.

The sample order (a seeded permutation per epoch, split across ranks, resumable) is the trainer's:
:class:`sana_wm.train.dataset.PlannedSampler`.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sana_wm.camera import latent_frames
from sana_wm.data.camera import VAE_STRIDE_THW, clip_camera_tensors
from sana_wm.data.layout import (
    LATENT_KEY,
    METRIC_SCALE_SUFFIX,
    CameraTable,
    metric_scale,
    numeric_score,
    read_keyed_sidecar,
    shard_paths,
)
from sana_wm.errors import InputError

DEFAULT_CAPTION = "prompt"
# The official reader's default size for clips whose JSON lacks width/height.
DEFAULT_RESOLUTION = 720


def _raw_dirs(raw_dirs: str | os.PathLike[str] | Sequence | Mapping) -> dict[str, Path]:
    if isinstance(raw_dirs, Mapping):
        return {str(k): Path(v) for k, v in raw_dirs.items()}
    if isinstance(raw_dirs, str | os.PathLike):
        return {"default": Path(raw_dirs)}
    return {f"default_{i}": Path(p) for i, p in enumerate(raw_dirs)}


class ZipLatentDataset(torch.utils.data.Dataset):
    """Map-style dataset of cached-latent clips with text and camera conditioning.

    Args:
        raw_dirs: directory of raw shards, a list of them, or ``{dataset name: directory}``.
        latent_dir: directory of latent shards (same file names as the raw shards).
        max_frames: pixel frames to use per clip (None = all): poses are cut to ``max_frames`` and latents to
            ``(max_frames - 1) // 8 + 1`` frames. (The official option truncates latents to ``num_frames``
            latent frames but poses to ``num_frames`` pixel frames; with its recipe's value, 961, neither cut
            happens, and with any other value the two disagree, so this reader uses one unit.)
        with_chunk_plucker: also return ``chunk_plucker`` (48, T, h, w).
        min_latent_bytes: skip latent entries smaller than this (the official recipe uses 10 MiB to skip
            broken entries; 0 keeps all, which small synthetic clips need).
        caption_weights: caption field -> weight; a sample's caption field is drawn among those present in
            its JSON (or added from ``caption_suffixes``) with these weights, else ``"prompt"`` is used.
        caption_suffixes: extra caption sidecars ``<stem><suffix>.json|.jsonl``; each adds a field named
            ``suffix`` (dots replaced by underscores) holding the record's ``"prompt"`` (or its first string).
        filters: ``{suffix: (min, max)}``: keep a clip only if ``<stem><suffix>.json|.jsonl`` has a score
            for it (reduced by :func:`~sana_wm.data.layout.numeric_score`) inside the closed range.
        repeat: list every clip this many times.
        vae_stride: VAE (time, height, width) compression.
        seed: seeds the caption choice (per index).
    """

    def __init__(
        self,
        raw_dirs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Mapping[str, Any],
        latent_dir: str | os.PathLike[str],
        *,
        max_frames: int | None = None,
        with_chunk_plucker: bool = True,
        min_latent_bytes: int = 0,
        caption_weights: Mapping[str, float] | None = None,
        caption_suffixes: Sequence[str] = (),
        filters: Mapping[str, tuple[float, float]] | None = None,
        repeat: int = 1,
        vae_stride: tuple[int, int, int] = VAE_STRIDE_THW,
        seed: int = 0,
    ) -> None:
        if max_frames is not None and max_frames < 1:
            raise InputError(f"max_frames: must be >= 1, got {max_frames}")
        self.latent_dir = Path(latent_dir)
        self.max_frames = max_frames
        self.with_chunk_plucker = with_chunk_plucker
        self.caption_weights = dict(caption_weights or {DEFAULT_CAPTION: 1.0})
        self.caption_suffixes = tuple(caption_suffixes)
        self.vae_stride = vae_stride
        self.seed = seed
        self.items: list[dict[str, str]] = []
        self._cameras: dict[str, CameraTable | None] = {}
        self._sidecars: dict[str, dict[str, Any]] = {}
        for name, raw_dir in _raw_dirs(raw_dirs).items():
            if not raw_dir.is_dir():
                raise InputError(f"raw_dirs: {raw_dir} is not a directory")
            for raw_zip in sorted(raw_dir.glob("*.zip")):
                latent_zip = self.latent_dir / raw_zip.name
                if latent_zip.is_file():
                    self._add_shard(name, raw_zip, latent_zip, min_latent_bytes, filters or {})
        self.items = [dict(item) for _ in range(max(1, int(repeat))) for item in self.items]

    def _add_shard(
        self, name: str, raw_zip: Path, latent_zip: Path, min_bytes: int, filters: Mapping[str, Any]
    ) -> None:
        with zipfile.ZipFile(raw_zip) as raw, zipfile.ZipFile(latent_zip) as cache:
            latents = {
                os.path.splitext(info.filename)[0]: info.filename
                for info in cache.infolist()
                if info.filename.endswith(".npz") and info.file_size >= min_bytes
            }
            for info in raw.infolist():
                key, ext = os.path.splitext(info.filename)
                if ext != ".json" or key not in latents:
                    continue
                if not all(self._passes(raw_zip, key, suffix, bounds) for suffix, bounds in filters.items()):
                    continue
                self.items.append(
                    {
                        "dataset": name,
                        "key": key,
                        "json": info.filename,
                        "raw_zip": str(raw_zip),
                        "latent_zip": str(latent_zip),
                        "latent": latents[key],
                    }
                )

    def _sidecar(self, raw_zip: str, suffix: str) -> dict[str, Any]:
        base = os.path.splitext(raw_zip)[0] + suffix
        if base not in self._sidecars:
            self._sidecars[base] = read_keyed_sidecar(base)
        return self._sidecars[base]

    def _passes(self, raw_zip: Path, key: str, suffix: str, bounds: tuple[float, float]) -> bool:
        score = numeric_score(self._sidecar(str(raw_zip), suffix).get(key))
        return score is not None and bounds[0] <= score <= bounds[1]

    def _camera_table(self, raw_zip: str) -> CameraTable | None:
        if raw_zip not in self._cameras:
            self._cameras[raw_zip] = CameraTable.load(shard_paths(raw_zip)[0])
        return self._cameras[raw_zip]

    def __len__(self) -> int:
        return len(self.items)

    def _caption(self, index: int, item: dict[str, str], info: dict[str, Any]) -> tuple[str, str]:
        for suffix in self.caption_suffixes:
            record = self._sidecar(item["raw_zip"], suffix).get(item["key"])
            if isinstance(record, dict):
                record = record.get(
                    DEFAULT_CAPTION, next((v for v in record.values() if isinstance(v, str)), None)
                )
            if isinstance(record, str):
                info[suffix.replace(".", "_")] = record
        present = [(f, float(w)) for f, w in self.caption_weights.items() if info.get(f) is not None]
        if not present:
            return DEFAULT_CAPTION, str(info.get(DEFAULT_CAPTION) or "")
        fields, weights = zip(*present, strict=True)
        if sum(weights) <= 0:
            field = DEFAULT_CAPTION if DEFAULT_CAPTION in fields else fields[0]
        else:
            p = np.asarray(weights) / sum(weights)
            field = fields[int(np.random.default_rng([self.seed, index]).choice(len(fields), p=p))]
        return field, str(info.get(field) or "")

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One sample: ``latents`` (C, T, h, w) float32, ``prompt``, ``camera_conditions`` (T, 20),
        ``chunk_plucker`` (48, T, h, w) if enabled, and ``key``, ``dataset``, ``raw_zip``, ``caption_type``,
        ``img_hw`` (the clip's [height, width]), ``metric_scale``, ``index``."""
        item = self.items[index]
        with zipfile.ZipFile(item["latent_zip"]) as cache, cache.open(item["latent"]) as f:
            with np.load(f, allow_pickle=False) as npz:
                latents = torch.from_numpy(np.asarray(npz[LATENT_KEY], dtype=np.float32))
        if latents.ndim != 4:
            raise InputError(
                f"{item['latent_zip']}:{item['latent']}: z must be (C, T, h, w), got {latents.shape}"
            )
        with zipfile.ZipFile(item["raw_zip"]) as raw:
            info = json.loads(raw.read(item["json"]).decode("utf-8"))
        camera = None
        table = self._camera_table(item["raw_zip"])
        if table is not None:
            camera = table.get(item["key"])
        if self.max_frames is not None:
            latents = latents[:, : latent_frames(self.max_frames, self.vae_stride[0])]
            if camera is not None:
                camera = (camera[0][: self.max_frames], camera[1][: self.max_frames])
        scale = metric_scale(
            self._sidecar(item["raw_zip"], METRIC_SCALE_SUFFIX.removesuffix(".json")), item["key"]
        )
        height = float(info.get("height", DEFAULT_RESOLUTION))
        width = float(info.get("width", DEFAULT_RESOLUTION))
        conditions, plucker = clip_camera_tensors(
            None if camera is None else camera[0],
            None if camera is None else camera[1],
            width=width,
            height=height,
            latent_thw=tuple(latents.shape[1:]),
            metric_scale=scale,
            vae_stride=self.vae_stride,
        )
        caption_type, prompt = self._caption(index, item, info)
        sample = {
            "latents": latents,
            "prompt": prompt,
            "camera_conditions": conditions,
            "key": item["key"],
            "dataset": item["dataset"],
            "raw_zip": item["raw_zip"],
            "caption_type": caption_type,
            "img_hw": torch.tensor([height, width], dtype=torch.float32),
            "metric_scale": scale,
            "index": index,
        }
        if self.with_chunk_plucker:
            sample["chunk_plucker"] = plucker
        return sample
