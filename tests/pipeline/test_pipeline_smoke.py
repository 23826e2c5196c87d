"""``benchmarks/pipeline_smoke.py --tiny --device cpu``: the GPU benchmark's code, run small on the CPU."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch

from sana_wm.models import SanaWMTransformer, tiny

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "pipeline_smoke.py"


def test_tiny_cpu_smoke_run_writes_a_complete_report(tmp_path) -> None:
    spec = importlib.util.spec_from_file_location("pipeline_smoke", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "report.json"
    video = tmp_path / "smoke.mp4"
    module.main(
        [
            "--tiny",
            "--device",
            "cpu",
            "--steps",
            "2",
            "--action",
            "w-20",
            "--out",
            str(out),
            "--video",
            str(video),
        ]
    )
    report = json.loads(out.read_text(encoding="utf-8"))
    # 21 poses -> 17 frames (8k + 1) -> 3 latent frames of 64/32 x 96/32.
    assert report["num_frames"] == report["frames_written"] == 17
    assert report["latent_shape"] == [1, 16, 3, 2, 3]
    with torch.device("meta"):
        expected_params = sum(p.numel() for p in SanaWMTransformer(tiny()).parameters())
    assert report["params"]["transformer"] == expected_params
    timings = report["timings_s"]
    assert {"text_encode", "vae_encode", "sampling", "decode", "write"} <= set(timings)
    assert abs(timings["sampling_per_step"] * 2 - timings["sampling"]) < 1e-9
    assert report["peak_memory_gib"] == {} and video.stat().st_size > 0
