"""Chunk-causal sampling: how latent frames split into chunks, which earlier chunks a chunk reads, and the two
samplers of the official chunk-causal releases, stateless like :mod:`sana_wm.samplers.solvers`.

- :func:`chunk_starts`: the chunk-causal teacher's chunk starts (``chunk_index_from_chunk_size``).
- :func:`autoregressive_segments`: the streaming student's chunks, the first one absorbing ``T mod b``.
- :func:`read_window`: the earlier chunks whose softmax K/V a chunk attends to (sink + latest ``W - 1``).
- :func:`student_sigmas`: the student's ``denoising_step_list`` ("1000,960,889,727,0") as a sigma grid.
- :func:`sample_chunk_flow_euler`: the teacher's diffusion-forcing staircase (``ChunkFlowEuler``).
- :func:`sample_self_forcing`: the student's chunk-by-chunk rollout (``SelfForcingFlowEulerCamCtrl``): a few
  Euler steps per chunk, then one timestep-0 pass that writes the chunk's cache; a generator, so a caller can
  change the camera between chunks.

The model is a function; what it keeps between calls (caches) is its business. Timesteps are ``t = 1000 σ``
per latent frame, float32, as in :mod:`~sana_wm.samplers.solvers`. Shape letters: docs/conventions.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from sana_wm.samplers.flow import euler_step

# model_fn(x_prefix_BCTHW, timestep_B1T, starts) -> v: the teacher sees the prefix of all started chunks.
PrefixModelFn = Callable[[torch.Tensor, torch.Tensor, Sequence[int]], torch.Tensor]
# model_fn(x_chunk_BCTHW, timestep_B1T, start, end, write_cache) -> v (ignored when write_cache).
ChunkModelFn = Callable[[torch.Tensor, torch.Tensor, int, int, bool], torch.Tensor]

STRATEGIES = ("uniform", "first_frame", "first_plus_one")
STUDENT_STEPS = "1000,960,889,727,0"


def chunk_starts(num_frames: int, chunk_size: int, strategy: str = "first_plus_one") -> list[int]:
    """Start index of every chunk of ``num_frames`` latent frames; a last chunk shorter than ``chunk_size`` is
    merged into the one before it.

    ``"uniform"``: 0, cs, 2cs, ...; ``"first_frame"``: 0, then 1, 1 + cs, ...; ``"first_plus_one"``
    (SANA-WM, cs = 3): 0, then cs + 1, 2cs + 1, ... (the first chunk holds the image frame and one chunk;
    121 frames give 40 chunks), a single chunk when ``num_frames <= cs + 1``.
    """
    if num_frames < 1 or chunk_size < 1:
        raise ValueError(f"need num_frames >= 1 and chunk_size >= 1, got {num_frames}, {chunk_size}")
    if strategy == "uniform":
        starts, minimum = list(range(0, num_frames, chunk_size)), 1
    elif strategy == "first_frame":
        starts, minimum = [0, *range(1, num_frames, chunk_size)], 2
    elif strategy == "first_plus_one":
        if num_frames <= chunk_size + 1:
            return [0]
        starts, minimum = [0, *range(chunk_size + 1, num_frames, chunk_size)], 1
    else:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    if len(starts) > minimum and num_frames - starts[-1] < chunk_size:
        starts.pop()
    return starts


def autoregressive_segments(num_frames: int, block: int = 3) -> list[tuple[int, int]]:
    """``(start, end)`` of the student's chunks: ``[0, b + T mod b)``, then every ``b`` frames
    (31 -> 10 chunks, the first of 4 frames; 41 -> the first of 5)."""
    if num_frames <= block:
        raise ValueError(f"the streaming student needs more than {block} latent frames, got {num_frames}")
    first = block + num_frames % block
    bounds = [0, *range(first, num_frames + 1, block)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def read_window(chunk: int, num_cached_blocks: int = 2, *, sink: bool = True) -> list[int]:
    """The earlier chunks whose cached K/V the softmax blocks of ``chunk`` read, in order.

    ``num_cached_blocks`` W > 0: the last W chunks before ``chunk``; with ``sink`` chunk 0 replaces the oldest
    of them once it would have left the window (W = 2: the sink and the previous chunk). W <= 0: every earlier
    chunk. (The GDN blocks read only the previous chunk's state, which summarises all of them.)
    """
    if chunk < 0:
        raise ValueError(f"chunk must be >= 0, got {chunk}")
    if num_cached_blocks <= 0:
        return list(range(chunk))
    if sink and chunk - num_cached_blocks + 1 > 0:
        return [0, *range(chunk - num_cached_blocks + 1, chunk)]
    return list(range(max(chunk - num_cached_blocks, 0), chunk))


def student_sigmas(step_list: str | Sequence[int] = STUDENT_STEPS) -> torch.Tensor:
    """``"1000,960,889,727,0"`` -> the float32 grid ``[1.0, 0.96, 0.889, 0.727, 0.0]`` (4 Euler steps;
    the list must end at 0 and decrease)."""
    values = (
        [int(v) for v in step_list.split(",")] if isinstance(step_list, str) else [int(v) for v in step_list]
    )
    if len(values) < 2 or values[-1] != 0 or any(a <= b for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"denoising steps must decrease to 0 with at least 2 entries, got {values}")
    return torch.tensor(values, dtype=torch.float32) / 1000.0


def _timesteps(sigma_T: torch.Tensor, batch: int, n_train: int) -> torch.Tensor:
    return (sigma_T * n_train).view(1, 1, -1).repeat(batch, 1, 1)


def sample_chunk_flow_euler(
    model_fn: PrefixModelFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    starts: Sequence[int],
    *,
    interval_k: float | None = None,
    cond_mask_T: torch.Tensor | None = None,
    num_train_timesteps: int = 1000,
) -> torch.Tensor:
    """The diffusion-forcing staircase: chunk ``i`` starts denoising at global step
    ``int(i * interval_k * S)`` (``interval_k`` default ``1 / chunks``) and then walks the ``S``-step grid
    ``sigmas`` (``(S + 1,)``, ending at 0); a finished chunk stays at σ = 0 and does not move, a chunk not
    yet started is not fed to the model at all (``model_fn`` gets the prefix of the started chunks and their
    starts). Conditioning frames (``cond_mask_T``) keep σ = 0 and their values. Returns the denoised ``x``
    (a new tensor).
    """
    steps = sigmas.numel() - 1
    total_frames = x.shape[2]
    ends = [*starts[1:], total_frames]
    interval = 1.0 / len(starts) if interval_k is None else interval_k
    offsets = [int(i * interval * steps) for i in range(len(starts))]
    keep_T = torch.zeros(total_frames, dtype=torch.bool) if cond_mask_T is None else cond_mask_T.bool().cpu()
    grid = sigmas.to(torch.float32).cpu()
    x = x.clone()
    for g in range(offsets[-1] + steps):
        active = [i for i, offset in enumerate(offsets) if offset <= g]
        end = ends[active[-1]]
        sigma_T, next_T = torch.zeros(end), torch.zeros(end)
        for i in active:
            k = g - offsets[i]
            if k < steps:
                sigma_T[starts[i] : ends[i]], next_T[starts[i] : ends[i]] = grid[k], grid[k + 1]
        sigma_T[keep_T[:end]], next_T[keep_T[:end]] = 0.0, 0.0
        prefix = x[:, :, :end]
        t_B1T = _timesteps(sigma_T, x.shape[0], num_train_timesteps).to(x.device)
        v = model_fn(prefix, t_B1T, [starts[i] for i in active])
        view = (1, 1, end, 1, 1)
        stepped = euler_step(
            prefix.float(), v.float(), sigma_T.view(view).to(x.device), next_T.view(view).to(x.device)
        )
        moving = (sigma_T != next_T).view(view).to(x.device)
        x[:, :, :end] = torch.where(moving, stepped, prefix.float()).to(x.dtype)
    return x


def sample_self_forcing(
    model_fn: ChunkModelFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    segments: Sequence[tuple[int, int]],
    *,
    cond_mask_T: torch.Tensor | None = None,
    num_train_timesteps: int = 1000,
) -> Iterator[tuple[int, torch.Tensor]]:
    """The student's rollout: for each chunk ``(s, e)`` in order, the Euler steps of ``sigmas`` on
    ``x[:, :, s:e]`` (conditioning frames at σ = 0, restored after every step), then one pass at σ = 0 with
    ``write_cache=True`` on the clean chunk. Yields ``(chunk index, denoised chunk)`` as each chunk is done;
    ``x`` is updated in place, so the caller may change what ``model_fn`` conditions on between chunks."""
    keep_T = torch.zeros(x.shape[2], dtype=torch.bool) if cond_mask_T is None else cond_mask_T.bool().cpu()
    grid = sigmas.to(torch.float32).cpu()
    initial = x.clone()
    for index, (start, end) in enumerate(segments):
        keep = keep_T[start:end]
        view = (1, 1, end - start, 1, 1)
        for k in range(grid.numel() - 1):
            sigma_T = torch.full((end - start,), float(grid[k]))
            sigma_T[keep] = 0.0
            chunk = x[:, :, start:end]
            t_B1T = _timesteps(sigma_T, x.shape[0], num_train_timesteps).to(x.device)
            v = model_fn(chunk, t_B1T, start, end, False)
            stepped = euler_step(chunk.float(), v.float(), float(grid[k]), float(grid[k + 1])).to(x.dtype)
            x[:, :, start:end] = torch.where(keep.view(view).to(x.device), initial[:, :, start:end], stepped)
        zeros = _timesteps(torch.zeros(end - start), x.shape[0], num_train_timesteps).to(x.device)
        model_fn(x[:, :, start:end], zeros, start, end, True)
        yield index, x[:, :, start:end]
