"""ODE regression: teacher trajectories at the student's timesteps, stored as safetensors shards, and the loss
that regresses the chunk-causal student onto them (official stage A, ``ode_t43``).

Shape letters: docs/conventions.md (``K`` snapshots of a trajectory).

Pairs (:func:`teacher_trajectory`, written by the ``ode_pairs`` mode of :mod:`sana_wm.train.trainer`): the
teacher's chunk-causal sampler (:func:`~sana_wm.samplers.chunked.sample_chunk_flow_euler`, the diffusion-
forcing staircase) runs from one noise tensor per clip on its own schedule (``teacher_steps`` shifted steps)
with the student's noise levels (``step_list``, official 1000/967/908/764 → 0) inserted, so the trajectory
passes through each of them exactly. Every frame's latent is recorded the moment the sampler feeds it to the
teacher at such a level, and the clean result closes the trajectory: ``latents (K, C, T, h, w)`` with
snapshot ``k`` at ``σ_k`` (snapshot 0 is the noise, the last the sampler's output bit for bit). Frame 0 is
the clean image latent in every snapshot.

Regression (:func:`ode_inputs`): per sample, each chunk of the student (its config's chunk layout) takes one
snapshot index ``k`` drawn uniformly; frame 0 is the clean snapshot. The student sees the mixed latents with
timesteps ``1000 σ_k`` (no shift), predicts ``x0 = x − σ v`` and is scored by the MSE to the clean endpoint
over the frames with ``σ > 0`` (:func:`~sana_wm.train.losses.flow_loss`'s reduction).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from sana_wm.errors import InputError
from sana_wm.samplers.chunked import PrefixModelFn, sample_chunk_flow_euler, student_sigmas
from sana_wm.samplers.schedules import flow_sigmas
from sana_wm.utils.atomic import atomic_output

PAIRS_FORMAT = "sana-wm-ode-pairs/1"
SHARD_GLOB = "shard_*.safetensors"
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


@dataclass(kw_only=True, frozen=True)
class ODEConfig:
    """ODE-pair generation (mode ``ode_pairs``) and regression (mode ``ode_regression``).

    Attributes:
        teacher_from: the teacher's weights (``ode_pairs``).
        teacher_chunk_size: the teacher's ``chunk_size`` (official: 3, the chunk-causal teacher; None runs a
            bidirectional teacher, one chunk); its other sizes are the run's ``model``'s.
        teacher_steps, teacher_shift: the teacher's own schedule (``flow_sigmas``), into which the student's
            levels are inserted.
        interval_k: the staircase's chunk offset (None: ``1 / chunks``, the official default).
        cfg_scale: the teacher's classifier-free guidance (1: none) with ``uncond_caption`` (as
            ``loss.null_caption``).
        step_list: the student's levels (must end at 0; official training ``1000,967,908,764,0``).
        pairs_dir: where ``ode_pairs`` writes the shards (default ``OUT_DIR/ode_pairs``) and
            ``ode_regression`` reads them.
        shard_size: clips per shard file; batch_size: clips per teacher call.
        dtype: storage dtype of the trajectories (official fp16).
    """

    teacher_from: str = ""
    teacher_chunk_size: int | None = 3
    teacher_steps: int = 30
    teacher_shift: float = 8.0
    interval_k: float | None = None
    cfg_scale: float = 1.0
    uncond_caption: str = "zeros"
    step_list: str = "1000,967,908,764,0"
    pairs_dir: str = ""
    shard_size: int = 16
    batch_size: int = 1
    dtype: Literal["fp16", "bf16", "fp32"] = "fp16"

    def __post_init__(self) -> None:
        try:
            student_sigmas(self.step_list)
        except ValueError as err:
            raise InputError(f"ode.step_list: {err}") from None
        for name in ("teacher_steps", "shard_size", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"ode.{name}: must be >= 1, got {getattr(self, name)}")
        if not self.teacher_shift > 0:
            raise InputError(f"ode.teacher_shift: must be > 0, got {self.teacher_shift}")
        if self.teacher_chunk_size is not None and self.teacher_chunk_size < 1:
            raise InputError(f"ode.teacher_chunk_size: must be >= 1 or none, got {self.teacher_chunk_size}")

    def sigmas(self) -> Tensor:
        """The student's levels ``(K,)`` float32, ending at 0."""
        return student_sigmas(self.step_list)

    def teacher_grid(self) -> Tensor:
        """The teacher's schedule with the student's levels inserted (descending, ends at 0)."""
        return merged_grid(flow_sigmas(self.teacher_steps, self.teacher_shift), self.sigmas())


def merged_grid(teacher_S: Tensor, student_K: Tensor) -> Tensor:
    """The union of two descending sigma grids, descending, float32 (shared levels once)."""
    return torch.unique(torch.cat([teacher_S.float(), student_K.float()])).flip(0)


def teacher_trajectory(
    model_fn: PrefixModelFn,
    initial_BCThw: Tensor,
    grid: Tensor,
    snapshot_sigmas: Tensor,
    starts: Sequence[int],
    *,
    interval_k: float | None = None,
) -> Tensor:
    """The staircase sampler's trajectory at ``snapshot_sigmas`` ``(K,)`` (ending at 0, each a level of
    ``grid``): ``(B, K, C, T, h, w)`` float32. Frame 0 of ``initial_BCThw`` is the clean condition."""
    wanted = [float(s) for s in snapshot_sigmas[:-1]]
    missing = [s for s in wanted if not bool((grid == s).any())]
    if missing:
        raise InputError(f"ode: levels {missing} are not on the teacher's grid")
    targets = [torch.tensor(s, dtype=torch.float32) * 1000 for s in wanted]  # as the sampler computes t
    batch, channels, frames = initial_BCThw.shape[:3]
    snaps = initial_BCThw.new_zeros(
        (batch, len(snapshot_sigmas), *initial_BCThw.shape[1:]), dtype=torch.float32
    )

    def recording(prefix: Tensor, t_B1T: Tensor, chunk_starts: Sequence[int]) -> Tensor:
        t_T = t_B1T[0, 0].cpu()
        for k, target in enumerate(targets):
            hit = (t_T == target).nonzero().flatten().tolist()
            if hit:
                snaps[:, k][:, :, hit] = prefix[:, :, hit].float()
        return model_fn(prefix, t_B1T, chunk_starts)

    cond_mask_T = torch.zeros(frames)
    cond_mask_T[0] = 1.0
    out = sample_chunk_flow_euler(
        recording, initial_BCThw, grid, starts, interval_k=interval_k, cond_mask_T=cond_mask_T
    )
    snaps[:, -1] = out.float()
    snaps[:, :, :, 0] = out[:, None, :, 0].float()
    return snaps


@dataclass
class ODEInputs:
    """The student's input: ``noisy`` (B, C, T, h, w), ``timestep`` (B, 1, T), ``sigma`` (B, 1, T),
    ``target`` the clean endpoint, ``loss_mask`` (B, T) (frames with σ > 0)."""

    noisy: Tensor
    timestep: Tensor
    sigma: Tensor
    target: Tensor
    loss_mask: Tensor


def ode_inputs(
    traj_BKCThw: Tensor, sigmas_K: Tensor, starts: Sequence[int], rngs: Sequence[np.random.Generator]
) -> ODEInputs:
    """Mix the snapshots per chunk (one uniform draw of ``k`` per chunk from ``rngs[b]``; frame 0 clean)."""
    batch, count, _, frames = traj_BKCThw.shape[:4]
    if len(rngs) != batch:
        raise InputError(f"rngs: expected {batch} generators, got {len(rngs)}")
    bounds = [*starts, frames]
    index_BT = torch.zeros(batch, frames, dtype=torch.int64)
    for b, rng in enumerate(rngs):
        for c in range(len(starts)):
            index_BT[b, bounds[c] : bounds[c + 1]] = int(rng.integers(count))
    index_BT[:, 0] = count - 1
    index_BT = index_BT.to(traj_BKCThw.device)
    gather = index_BT[:, None, None, :, None, None].expand(-1, 1, *traj_BKCThw.shape[2:])
    noisy = torch.gather(traj_BKCThw.float(), 1, gather)[:, 0]
    sigma_BT = sigmas_K.float().to(traj_BKCThw.device)[index_BT]
    return ODEInputs(
        noisy=noisy,
        timestep=(sigma_BT * 1000.0)[:, None, :],
        sigma=sigma_BT[:, None, :],
        target=traj_BKCThw[:, -1].float(),
        loss_mask=(sigma_BT > 0).float(),
    )


class ODEPairs:
    """The shards of a ``pairs_dir`` as a training dataset: sample ``i`` holds ``ode_latents``
    (K, C, T, h, w), ``latents`` (its clean endpoint), ``camera_conditions``, ``chunk_plucker``, ``text``,
    ``text_mask``. ``sigmas`` are the levels the shards were made at."""

    def __init__(self, pairs_dir: str | Path) -> None:
        self.files = sorted(Path(pairs_dir).glob(SHARD_GLOB))
        if not self.files:
            raise InputError(
                f"ode.pairs_dir: {pairs_dir} holds no {SHARD_GLOB} (run the ode_pairs mode first)"
            )
        self.offsets, levels = [0], set()
        for file in self.files:
            with safe_open(str(file), framework="pt") as handle:
                meta = handle.metadata() or {}
                if meta.get("format") != PAIRS_FORMAT:
                    raise InputError(f"ode.pairs_dir: {file} is not a {PAIRS_FORMAT} shard")
                levels.add(meta["step_list"])
                self.offsets.append(self.offsets[-1] + handle.get_slice("index").get_shape()[0])
        if len(levels) != 1:
            raise InputError(f"ode.pairs_dir: shards made at different levels {sorted(levels)}")
        self.step_list = levels.pop()
        self.sigmas = student_sigmas(self.step_list)

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        shard = bisect.bisect_right(self.offsets, index) - 1
        row = index - self.offsets[shard]
        with safe_open(str(self.files[shard]), framework="pt") as handle:
            item = {key: handle.get_slice(key)[row : row + 1][0] for key in handle.keys() if key != "index"}
        traj = item.pop("latents").float()
        return {"ode_latents": traj, "latents": traj[-1], **{k: v.float() for k, v in item.items()}}


def shard_path(pairs_dir: Path, shard: int) -> Path:
    return pairs_dir / f"shard_{shard:05d}.safetensors"


def write_shard(path: Path, rows: dict[str, list[Tensor]], dtype: torch.dtype, meta: dict[str, Any]) -> None:
    """One shard (atomically): ``latents`` in ``dtype``, the conditioning in fp32, ``index`` int64."""
    tensors = {k: torch.stack(v).contiguous() for k, v in rows.items()}
    tensors["latents"] = tensors["latents"].to(dtype)
    metadata = {
        "format": PAIRS_FORMAT,
        **{k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()},
    }
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def clip_noise(seed: int, index: int, shape: Sequence[int]) -> Tensor:
    """The noise of clip ``index``: ``N(0, I)`` on the CPU from ``(seed, index)`` alone."""
    gen = torch.Generator().manual_seed(int(np.random.default_rng([seed, index]).integers(2**63 - 1)))
    return torch.randn(tuple(shape), generator=gen)


def shard_indices(num_items: int, shard_size: int, rank: int, world_size: int) -> list[list[int]]:
    """The clip indices of each shard this rank writes (shards ``rank, rank + world, ...``)."""
    count = -(-num_items // shard_size)
    return [
        list(range(s * shard_size, min((s + 1) * shard_size, num_items)))
        for s in range(rank, count, world_size)
    ]


def guided_prefix_fn(
    model: torch.nn.Module, cond: Any, uncond_text: Tensor | None, scale: float, autocast: Callable[[], Any]
) -> PrefixModelFn:
    """The teacher as a staircase ``model_fn``: it sees the prefix of started chunks (their starts as its
    chunk layout) and, with ``scale != 1``, guidance ``v_u + s (v_c − v_u)`` against ``uncond_text``."""
    from sana_wm.models.causal import ChunkLayout

    chunked = model.config.chunk_size is not None

    def fn(prefix: Tensor, t_B1T: Tensor, starts: Sequence[int]) -> Tensor:
        end = prefix.shape[2]
        layout = ChunkLayout(tuple(starts)) if chunked else None
        args = (cond.camera[:, :end], cond.plucker[:, :, :end])
        with torch.no_grad(), autocast():
            v = model(prefix, t_B1T, cond.text, cond.text_mask, *args, chunks=layout).float()
            if scale != 1.0 and uncond_text is not None:
                v_u = model(prefix, t_B1T, uncond_text, cond.text_mask, *args, chunks=layout).float()
                v = v_u + scale * (v - v_u)
        return v

    return fn
