"""What the trainer needs from a dataset, the sample order, and the datasets a run config can name.

Shape letters: docs/conventions.md.

A :class:`TrainingDataset` is any map-style dataset whose samples hold ``latents`` (C, T, h, w),
``camera_conditions`` (T, 20), ``chunk_plucker`` (48, T, h, w), and either ``text`` (L, D) + ``text_mask``
(L,) or a ``prompt`` string (encoded by the trainer's text encoder). All samples of a batch share one shape.

Order: the trainer walks a global sample sequence: epoch ``e`` is a permutation of the dataset seeded by
``(seed, e)``, cut into global batches (drop-last); within a step, rank ``r`` takes the contiguous slice
``[r·b, (r+1)·b)`` of every micro-batch-sized group. The data position is therefore a function of the step,
and a run on any number of processes sees the same global batches.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from sana_wm.camera import prepare_camera
from sana_wm.errors import InputError
from sana_wm.latent_shape import pixel_frames

TENSOR_KEYS = ("latents", "camera_conditions", "chunk_plucker", "text", "text_mask", "ode_latents")


@runtime_checkable
class TrainingDataset(Protocol):
    """Map-style dataset of training clips (see the module docstring for the sample keys)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Mapping[str, Any]: ...


@dataclass(kw_only=True, frozen=True)
class DataConfig:
    """Where samples come from.

    Attributes:
        kind: ``synthetic`` (random clips, :class:`SyntheticClips`; tests and smoke runs) or ``zip`` (the
            official latent-zip layout read by :class:`sana_wm.data.ZipLatentDataset`, e.g. the output of
            ``sana-wm worlds render`` + ``sana-wm cache-latents``).
        shuffle: permute the samples every epoch (else dataset order).
        num_workers: ``DataLoader`` worker processes (0 reads in the training process).
        num_clips, frames, height, width, text_tokens: size of the synthetic set (latent frames and grid).
        raw_dir, latent_dir: the ``zip`` shards (``latent_dir`` defaults to ``raw_dir/../latents``).
        max_frames: pixel frames per clip for ``zip`` (None = all).
        repeat: list every ``zip`` clip this many times.
        text_encoder: Gemma-2 folder or Hub id used to encode ``zip`` prompts (with the chi prefix), or
            ``none``: no text (all-zero features with one unmasked token), for camera-only runs and tests.
        text_max_length: tokens per encoded prompt (official 300).
    """

    kind: Literal["synthetic", "zip"] = "synthetic"
    shuffle: bool = True
    num_workers: int = 0
    num_clips: int = 8
    frames: int = 5
    height: int = 4
    width: int = 4
    text_tokens: int = 8
    raw_dir: str = ""
    latent_dir: str = ""
    max_frames: int | None = None
    repeat: int = 1
    text_encoder: str = "Efficient-Large-Model/gemma-2-2b-it"
    text_max_length: int = 300

    def __post_init__(self) -> None:
        for name in ("num_clips", "frames", "height", "width", "text_tokens", "repeat", "text_max_length"):
            if getattr(self, name) < 1:
                raise InputError(f"data.{name}: must be >= 1, got {getattr(self, name)}")
        if self.num_workers < 0:
            raise InputError(f"data.num_workers: must be >= 0, got {self.num_workers}")


class SyntheticClips:
    """Deterministic random clips: sample ``i`` depends only on ``(seed, i)``.

    Latents and caption features are standard normal; the camera walks forward 5 cm per pixel frame while
    turning 0.5° per frame, with a 90° horizontal field of view, built by
    :func:`sana_wm.camera.prepare_camera` on a ``32 h × 32 w`` canvas (pixel frames ``8 (T − 1) + 1``); the
    first ``L − i mod L`` text tokens are real.
    """

    def __init__(
        self,
        num_clips: int,
        *,
        channels: int,
        frames: int,
        height: int,
        width: int,
        text_tokens: int,
        caption_channels: int,
        seed: int = 0,
    ) -> None:
        self.num_clips, self.channels, self.frames = num_clips, channels, frames
        self.height, self.width = height, width
        self.text_tokens, self.caption_channels, self.seed = text_tokens, caption_channels, seed
        num_pixel_frames = pixel_frames(frames)
        angle = np.deg2rad(0.5) * np.arange(num_pixel_frames)
        c2w = np.repeat(np.eye(4)[None], num_pixel_frames, axis=0)
        cos, sin = np.cos(angle), np.sin(angle)
        c2w[:, 0, 0], c2w[:, 0, 2], c2w[:, 2, 0], c2w[:, 2, 2] = cos, sin, -sin, cos  # yaw about +Y
        c2w[:, 2, 3] = 0.05 * np.arange(num_pixel_frames)
        canvas_h, canvas_w = 32 * height, 32 * width
        intrinsics = np.tile([canvas_w / 2, canvas_w / 2, canvas_w / 2, canvas_h / 2], (num_pixel_frames, 1))
        self.camera_T20, self.plucker_CThw = prepare_camera(c2w, intrinsics, canvas_h, canvas_w)

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        if not 0 <= index < self.num_clips:
            raise IndexError(index)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        mask = torch.zeros(self.text_tokens)
        mask[: self.text_tokens - index % self.text_tokens] = 1.0
        return {
            "latents": torch.randn(self.channels, self.frames, self.height, self.width, generator=gen),
            "text": torch.randn(self.text_tokens, self.caption_channels, generator=gen),
            "text_mask": mask,
            "camera_conditions": self.camera_T20.clone(),
            "chunk_plucker": self.plucker_CThw.clone(),
        }


def build_dataset(cfg: DataConfig, *, channels: int, caption_channels: int, seed: int) -> TrainingDataset:
    """The dataset a :class:`DataConfig` names."""
    if cfg.kind == "synthetic":
        return SyntheticClips(
            cfg.num_clips,
            channels=channels,
            frames=cfg.frames,
            height=cfg.height,
            width=cfg.width,
            text_tokens=cfg.text_tokens,
            caption_channels=caption_channels,
            seed=seed,
        )
    from pathlib import Path

    from sana_wm.data import ZipLatentDataset

    if not cfg.raw_dir:
        raise InputError("data.raw_dir: required for data.kind=zip")
    latent_dir = cfg.latent_dir or str(Path(cfg.raw_dir).parent / "latents")
    return ZipLatentDataset(cfg.raw_dir, latent_dir, max_frames=cfg.max_frames, repeat=cfg.repeat, seed=seed)


@functools.lru_cache(maxsize=4)
def epoch_permutation(num_items: int, epoch: int, seed: int, shuffle: bool) -> Tensor:
    """Dataset order of ``epoch``: ``randperm`` under ``seed·1_000_003 + epoch``, or identity (cached: every
    micro-batch of an epoch reads it; do not modify the result)."""
    if not shuffle:
        return torch.arange(num_items)
    return torch.randperm(num_items, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


@dataclass(frozen=True)
class SamplePlan:
    """Where a sample sits: ``position`` in its step's global batch and its dataset ``index``."""

    position: int
    index: int


def micro_batch_plan(
    step: int,
    micro: int,
    *,
    num_items: int,
    global_batch: int,
    micro_batch: int,
    rank: int,
    world_size: int,
    seed: int,
    shuffle: bool,
) -> list[SamplePlan]:
    """The samples of rank ``rank`` in micro-batch ``micro`` of optimiser step ``step`` (0-based)."""
    steps_per_epoch = num_items // global_batch
    if steps_per_epoch < 1:
        raise InputError(
            f"global_batch_size: {global_batch} is larger than the dataset ({num_items} samples)"
        )
    epoch, within = divmod(step, steps_per_epoch)
    order = epoch_permutation(num_items, epoch, seed, shuffle)
    first = micro * world_size * micro_batch + rank * micro_batch
    positions = range(first, first + micro_batch)
    return [SamplePlan(p, int(order[within * global_batch + p])) for p in positions]


class PlannedSampler(torch.utils.data.Sampler[list[int]]):
    """Yields the dataset indices of every micro-batch of this rank from ``start_step`` to ``max_steps``."""

    def __init__(
        self, plan: Callable[[int, int], list[SamplePlan]], start_step: int, max_steps: int, accum: int
    ) -> None:
        self.plan, self.start_step, self.max_steps, self.accum = plan, start_step, max_steps, accum

    def __len__(self) -> int:
        return (self.max_steps - self.start_step) * self.accum

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.max_steps):
            for micro in range(self.accum):
                yield [s.index for s in self.plan(step, micro)]


def collate(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack the tensor fields; ``prompt`` becomes a list. Shapes must agree across the batch."""
    out: dict[str, Any] = {}
    for key in TENSOR_KEYS:
        if key in samples[0]:
            shapes = {tuple(s[key].shape) for s in samples}
            if len(shapes) > 1:
                raise InputError(f"batch: samples have different {key} shapes {sorted(shapes)}")
            out[key] = torch.stack([torch.as_tensor(s[key]) for s in samples])
    if "prompt" in samples[0]:
        out["prompt"] = [str(s["prompt"]) for s in samples]
    missing = [k for k in ("latents", "camera_conditions", "chunk_plucker") if k not in out]
    if missing or ("text" not in out and "prompt" not in out):
        raise InputError(f"dataset: samples lack {', '.join(missing) or 'text (or prompt)'}")
    return out
