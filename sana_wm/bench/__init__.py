"""``sana-wm bench``: GPU benchmarks of the stage-1 transformer against the diffusers peer, and of whole
generations.

| module | what |
|---|---|
| ``settings.py`` | the typed, validated settings of a run |
| ``flops.py`` | analytic FLOP count of one forward, per component |
| ``build.py`` | random weights, one random clip, the diffusers peer loaded with our weights |
| ``timing.py`` | warm-up + median timing, peak memory (allocator and device), matmul rate, per-module time |
| ``transformer.py`` | transformer mode: ours against the peer per clip length |
| ``pipeline.py`` | pipeline mode: random full-size components, per-stage time and memory |
| ``stream.py`` | stream mode: a streamed generation, per chunk (latency, steady state, memory) |
| ``report.py`` | environment header, JSON, markdown rows for BENCHMARKS.md |
"""

from __future__ import annotations

from typing import Any

from sana_wm.bench.report import environment
from sana_wm.bench.settings import BenchSettings, bench_settings

__all__ = ["BenchSettings", "bench_settings", "run_bench"]


def run_bench(settings: BenchSettings, command: str) -> dict[str, Any]:
    """Run the benchmark ``settings`` describe; returns the whole report (environment, settings, results)."""
    env = environment(settings, command)
    if settings.mode == "stream":
        from sana_wm.bench.stream import run_stream_bench

        body = run_stream_bench(settings)
    elif settings.mode == "pipeline":
        from sana_wm.bench.pipeline import run_pipeline_bench

        body = run_pipeline_bench(settings)
    else:
        from sana_wm.bench.transformer import run_transformer_bench

        body = run_transformer_bench(settings)
    return {"environment": env, "settings": settings.to_dict(), **body}
