"""Where a streamed stage-1 chunk spends its time at full size (random weights, bf16, H100): CUDA-event time
of the 5 forwards of one steady-state chunk (4 Euler steps + the cache write), their CPU launch time, and the
profiler's top CUDA kernels. Prints a table; writes nothing.

    python benchmarks/stream_profile.py [--chunks 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from sana_wm.bench.pipeline import PROMPT, action_for, first_frame
from sana_wm.bench.settings import bench_settings
from sana_wm.bench.stream import _NoDecode, build_stream_pipeline
from sana_wm.camera import action_to_c2w, default_intrinsics
from sana_wm.inference.streaming import StreamSession, StreamSettings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=4, help="chunks before the profiled one")
    args = parser.parse_args()
    settings = bench_settings(mode="stream", backend="triton")
    pipe = build_stream_pipeline(settings)
    frames = 24 * (args.chunks + 2) + 1
    c2w = action_to_c2w(action_for(frames))[:frames]
    session = StreamSession.create(
        pipe, first_frame(704, 1280), PROMPT, c2w, default_intrinsics((704, 1280)), frames,
        StreamSettings(), decoder=_NoDecode(),
    )  # fmt: skip
    chunks = iter(session)
    for _ in range(args.chunks):
        next(chunks)
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        next(chunks)
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    events = prof.key_averages()
    cuda_total = sum(e.self_device_time_total for e in events) / 1e6
    print(
        f"one steady chunk: wall {wall:.3f} s, CUDA kernel time {cuda_total:.3f} s ({cuda_total / wall:.0%})"
    )
    print(events.table(sort_by="self_device_time_total", row_limit=25, max_name_column_width=60))
    print("kernel launches:", int(np.sum([e.count for e in events if e.device_type.name == "CUDA"])))


if __name__ == "__main__":
    main()
