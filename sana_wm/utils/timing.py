"""Wall-clock timing of pipeline stages, with CUDA synchronised so the time is the GPU's too."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def timed_stage(
    name: str, *, device: torch.device, timings: dict[str, float], memory: dict[str, float]
) -> Iterator[None]:
    """Store the stage's seconds in ``timings[name]``; on CUDA its peak allocated GiB in ``memory[name]``."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    yield
    if cuda:
        torch.cuda.synchronize(device)
        memory[name] = torch.cuda.max_memory_allocated(device) / 2**30
    timings[name] = time.perf_counter() - start
