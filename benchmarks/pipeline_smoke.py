"""Full-size smoke run of the stage-1 pipeline with random weights: time per stage and peak GPU memory.

Needs no download (the components come from ``sana_wm.bench.pipeline``, as for ``sana-wm bench --mode
pipeline``): Gemma-2 with the gemma-2-2b(-it) architecture, the LTX-2 VAE with the released architecture and
our ``sana_wm_1600m_720p`` transformer are built with random weights directly on the device, the tokenizer is
a character-level Gemma tokenizer built in-process (so token counts differ from the real one; the text encoder
still sees 300-token prompts plus the chi prefix). The numbers measure speed and memory only: the video is
noise.

    python benchmarks/pipeline_smoke.py --out bench.json                   # GPU: bf16, 161 frames, 60 steps
    python benchmarks/pipeline_smoke.py --steps 4 --offload model --out b.json       # quick, low memory
    python benchmarks/pipeline_smoke.py --tiny --device cpu --steps 2 --out s.json   # CPU smoke test

Prints one line per stage and writes a JSON report to ``--out``: per-stage seconds (text encode, VAE encode,
sampling total and per step, decode, mp4 write), per-stage peak ``torch.cuda.max_memory_allocated`` (GiB),
parameter counts and the settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from sana_wm.bench.pipeline import DEFAULT_ACTION, PROMPT, build_pipeline, count_params, first_frame
from sana_wm.camera import default_intrinsics
from sana_wm.inference import GenerationRequest
from sana_wm.inference.run import generate
from sana_wm.utils.device import DTYPES, resolve_device, resolve_dtype
from sana_wm.utils.video_io import VideoWriter


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="tiny components at 64x96, 17 frames (CPU smoke test)")
    p.add_argument("--device", help="default: cuda if available, else cpu")
    p.add_argument("--dtype", choices=sorted(DTYPES), help="default: bfloat16 on cuda, float32 on cpu")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--num_frames", type=int, help="default 161 (17 with --tiny)")
    p.add_argument("--offload", choices=("none", "model", "group"), default="none")
    p.add_argument("--action", default=DEFAULT_ACTION)
    p.add_argument("--video", help="keep the mp4 here (default: written to a temporary file and deleted)")
    p.add_argument("--out", required=True, help="JSON report")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    height, width = (64, 96) if args.tiny else (704, 1280)
    num_frames = args.num_frames or (17 if args.tiny else 161)
    cuda = device.type == "cuda"

    start = time.perf_counter()
    pipe = build_pipeline(small=args.tiny, device=device, dtype=dtype, offload=args.offload)
    build_s = time.perf_counter() - start
    params = {
        "transformer": count_params(pipe.transformer),
        "text_encoder": count_params(pipe.text_encoder.model),
        "vae": count_params(pipe.vae.vae),
    }

    image = first_frame(height, width)
    request = GenerationRequest.create(
        image,
        PROMPT,
        action=args.action,
        intrinsics=default_intrinsics((height, width)),
        num_frames=num_frames,
        steps=args.steps,
        height=height,
        width=width,
    )
    out = generate(pipe, request, progress=True)
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(args.video) if args.video else Path(tmp) / "smoke.mp4"
        write_start = time.perf_counter()
        with VideoWriter(video, fps=16) as writer:
            writer.write_many(out.frames)
        frames_written = writer.frames_written
        write_total = time.perf_counter() - write_start
    timings = {"build_random_weights": build_s, **out.timings, "write": write_total - out.timings["decode"]}
    memory = dict(out.peak_memory_gib)
    if memory:
        memory["max"] = max(memory.values())

    report = {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "torch": torch.__version__,
        "dtype": str(dtype).removeprefix("torch."),
        "offload": pipe.offload,
        "tiny": args.tiny,
        "height": height,
        "width": width,
        "num_frames": out.num_frames,
        "frames_written": frames_written,
        "latent_shape": list(out.latents.shape),
        "steps": args.steps,
        "params": params,
        "timings_s": timings,
        "peak_memory_gib": memory,
    }
    for name, seconds in timings.items():
        peak = f"   peak {memory[name]:.2f} GiB" if name in memory else ""
        print(f"{name:>22}: {seconds:9.3f} s{peak}")
    if memory:
        print(f"{'peak (all stages)':>22}: {memory['max']:.2f} GiB")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
