"""The ``ode_pairs`` mode: the teacher's trajectories on the run's clips, written as safetensors shards.

Each rank writes shards ``rank, rank + world, ...`` of ``ode.shard_size`` clips (``OUT_DIR/ode_pairs`` unless
``ode.pairs_dir``), with a plain copy of the teacher (inference only: no collective, so ranks never wait on
each other). Clip ``i`` starts from :func:`~sana_wm.train.ode.clip_noise` of ``(seed, i)`` with its image
latent as frame 0, so a shard's content depends on the config and its clips alone: a restarted run skips the
shards already on disk (each is written atomically) and writes the same bytes for the others. Shard tensors:
``latents`` (N, K, C, T, h, w) in ``ode.dtype``, ``camera_conditions``, ``chunk_plucker``, ``text``,
``text_mask`` (fp32) and ``index`` (the clips' dataset indices); metadata: the format, ``step_list``, the
teacher's file and schedule.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from pathlib import Path
from typing import Any

import torch

import sana_wm.train.parallel as parallel
from sana_wm.errors import InputError
from sana_wm.samplers.chunked import chunk_starts
from sana_wm.train.dataset import collate
from sana_wm.train.dmd import Conditioning
from sana_wm.train.ode import (
    DTYPES,
    clip_noise,
    guided_prefix_fn,
    shard_indices,
    shard_path,
    teacher_trajectory,
    write_shard,
)

log = logging.getLogger("sana_wm")


def pairs_dir(cfg: object) -> Path:
    """Where a run's shards go: ``ode.pairs_dir`` or ``OUT_DIR/ode_pairs``."""
    return Path(cfg.ode.pairs_dir or Path(cfg.out_dir) / "ode_pairs")  # type: ignore[attr-defined]


def write_ode_pairs(trainer: Any, info: parallel.DistInfo) -> int:
    """Write this rank's missing shards (module docstring); returns how many it wrote. ``trainer`` is the
    run's :class:`~sana_wm.train.trainer.Trainer` (its config, dataset and text features)."""
    cfg, ode = trainer.cfg, trainer.cfg.ode
    if not ode.teacher_from:
        raise InputError("ode.teacher_from: the ode_pairs mode needs the teacher's weights")
    out = pairs_dir(cfg)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    parallel.barrier(info)
    teacher_cfg = dataclasses.replace(cfg.model, chunk_size=ode.teacher_chunk_size)
    no_ac = dataclasses.replace(cfg.parallel, activation_checkpointing=False)
    alone = dataclasses.replace(info, rank=0, world_size=1)  # a plain copy per rank
    teacher = parallel.build_model(teacher_cfg, no_ac, alone, seed=cfg.seed, init_from=ode.teacher_from)
    teacher.requires_grad_(False)
    teacher.eval()
    dataset = trainer.dataset or trainer.build_dataset()
    autocast = functools.partial(parallel.autocast_context, cfg.parallel, info.device)
    grid, sigmas = ode.teacher_grid(), ode.sigmas()
    meta = {
        "step_list": ode.step_list,
        "teacher_from": ode.teacher_from,
        "teacher_chunk_size": ode.teacher_chunk_size,
        "teacher_steps": ode.teacher_steps,
        "teacher_shift": ode.teacher_shift,
        "cfg_scale": ode.cfg_scale,
        "seed": cfg.seed,
    }
    written = 0
    for indices in shard_indices(len(dataset), ode.shard_size, info.rank, info.world_size):
        path = shard_path(out, indices[0] // ode.shard_size)
        if path.is_file():
            continue
        rows: dict[str, list[torch.Tensor]] = {k: [] for k in ("latents", *_COND_KEYS, "index")}
        for start in range(0, len(indices), ode.batch_size):
            batch_indices = indices[start : start + ode.batch_size]
            batch = collate([dataset[i] for i in batch_indices])
            traj = _trajectories(trainer, teacher, batch, batch_indices, grid, sigmas, autocast, info.device)
            rows["latents"] += list(traj.cpu())
            for key in _COND_KEYS:
                rows[key] += list(batch[key].float().cpu())
            rows["index"] += [torch.tensor(i) for i in batch_indices]
        write_shard(path, rows, DTYPES[ode.dtype], meta)
        written += 1
        log.info("wrote %s (%d clips)", path, len(indices))
    parallel.barrier(info)
    return written


_COND_KEYS = ("camera_conditions", "chunk_plucker", "text", "text_mask")


def _trajectories(
    trainer: Any,
    teacher: torch.nn.Module,
    batch: dict,
    indices: list[int],
    grid: torch.Tensor,
    sigmas: torch.Tensor,
    autocast: functools.partial,
    device: torch.device,
) -> torch.Tensor:
    """The teacher's trajectories ``(B, K, C, T, h, w)`` of one batch of clips (``batch`` gains ``text``)."""
    cfg, ode = trainer.cfg, trainer.cfg.ode
    latents = batch["latents"].to(device).float()
    text = trainer.batch_text(batch, device)
    batch["text"] = text
    uncond = trainer.caption(ode.uncond_caption, batch, text, device)
    cond = Conditioning(
        text=text,
        text_mask=batch["text_mask"].to(device),
        camera=batch["camera_conditions"].to(device),
        plucker=batch["chunk_plucker"].to(device),
    )
    noise = torch.stack([clip_noise(cfg.seed, i, latents.shape[1:]) for i in indices]).to(device)
    noise[:, :, 0] = latents[:, :, 0]
    frames = latents.shape[2]
    chunk = ode.teacher_chunk_size
    starts = [0] if chunk is None else chunk_starts(frames, chunk, cfg.model.chunk_strategy)
    fn = guided_prefix_fn(teacher, cond, uncond[None].expand_as(text).to(text.dtype), ode.cfg_scale, autocast)
    return teacher_trajectory(fn, noise, grid, sigmas, starts, interval_k=ode.interval_k)
