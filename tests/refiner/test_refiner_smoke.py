"""``benchmarks/refiner_smoke.py --tiny --device cpu``: the GPU benchmark's code, run small on the CPU."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "refiner_smoke.py"


def test_tiny_cpu_smoke_run_reports_every_dit_call(tmp_path) -> None:
    spec = importlib.util.spec_from_file_location("refiner_smoke", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "report.json"
    module.main(["--tiny", "--device", "cpu", "--mode", "chunk_causal", "--fp8", "--out", str(out)])
    report = json.loads(out.read_text(encoding="utf-8"))
    # 33 frames -> 5 latent frames: sink, blocks [1, 4) and [4, 5) of 3 steps each, one history capture.
    assert report["latent_shape"] == [1, 8, 5, 2, 3] and report["output_frames"] == 32
    calls = report["timings_s"]["dit_calls"]
    assert [len(calls[k]) for k in ("sink_capture", "step", "history_capture")] == [1, 6, 1]
    assert report["params"]["transformer_video_only"] == 15800 and report["output_finite"]
