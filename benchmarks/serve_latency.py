"""Latency and frame rate of ``sana-wm serve``: key press → first frame made from it, and sustained fps.

Starts the server in this process (uvicorn on a free loopback port, a worker thread for the model) and
drives it with a protocol client (:func:`sana_wm.serve.measure.measure`: from rest, then walking with a key
change at a random moment of every chunk). Prints one JSON object; ``--out`` also writes it.

    # the bundled demo model on the CPU (its 192 x 352, 30 steps per chunk; --steps to trade quality)
    python benchmarks/serve_latency.py
    # full-size random weights on a GPU: stage 1 (the release's chunk-causal 1.6 B transformer, 4 student
    # steps) + the causal LTX-2 VAE decode, 704 x 1280, bf16
    python benchmarks/serve_latency.py --weights random_full --out benchmarks/results/serve_h100.json
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch


def build_engine(args: argparse.Namespace) -> Any:
    from sana_wm.serve.engine import EngineDefaults, engine_from_pipeline, load_engine

    if args.weights == "demo":
        from sana_wm.inference.request import RuntimeSettings
        from sana_wm.inference.source import choose_model

        return load_engine(
            choose_model(), RuntimeSettings(device=args.device), decode_lookahead=args.lookahead
        )
    from sana_wm.bench.pipeline import first_frame
    from sana_wm.bench.settings import bench_settings
    from sana_wm.bench.stream import build_stream_pipeline
    from sana_wm.samplers.chunked import STUDENT_STEPS

    tiny = args.weights == "random_tiny"
    settings = bench_settings(mode="stream", tiny=tiny, device=args.device, backend=args.backend)
    pipe = build_stream_pipeline(settings)
    defaults = EngineDefaults(
        height=settings.height, width=settings.width, steps=4, flow_shift=1.0, step_list=STUDENT_STEPS
    )
    return engine_from_pipeline(pipe, defaults, first_frame(settings.height, settings.width))


def _cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    names = [
        line.split(":", 1)[1].strip()
        for line in info.read_text().splitlines()
        if line.startswith("model name")
    ]
    return f"{names[0]} x {len(names)}" if names else platform.processor() or "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", choices=("demo", "random_full", "random_tiny"), default="demo")
    parser.add_argument("--device", help="default: cuda if available, else cpu")
    parser.add_argument("--backend", default="auto", help="ops backend of the random-weight transformer")
    parser.add_argument("--steps", type=int, help="steps per chunk (the demo model; default its 30)")
    parser.add_argument("--height", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--lookahead", type=int, default=1, help="decode lookahead of a non-causal VAE")
    parser.add_argument("--presses", type=int, default=3)
    parser.add_argument("--walk_chunks", type=int, default=6)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--no_record", action="store_true", help="send frames only (no mp4: no PyAV needed)")
    args = parser.parse_args()
    if args.backend == "auto":
        args.backend = "triton" if torch.cuda.is_available() and args.device != "cpu" else "torch"

    from sana_wm.serve.measure import measure
    from sana_wm.serve.protocol import ServeLimits
    from sana_wm.serve.server import ServeConfig, start_in_thread

    engine = build_engine(args)
    engine.record = not args.no_record
    load_before = os.getloadavg()[0]
    session = {k: v for k, v in (("steps", args.steps), ("height", args.height), ("width", args.width)) if v}
    chunks = 1 + 2 * args.presses + args.walk_chunks + 2
    config = ServeConfig(port=0, limits=ServeLimits(max_chunks=chunks), decode_lookahead=args.lookahead)
    with tempfile.TemporaryDirectory() as workdir:
        server = start_in_thread(engine, config, Path(workdir))
        try:
            result = measure(server.url, session, presses=args.presses, walk_chunks=args.walk_chunks)
        finally:
            server.stop()
    device = engine.pipe.device
    result.update(
        weights=args.weights,
        model=engine.kind,
        steps=args.steps or engine.defaults.steps,
        distilled=bool(engine.defaults.step_list),
        decode_lookahead=args.lookahead if not engine.pipe.vae.vae.decoder.is_causal else 0,
        dtype=str(engine.pipe.dtype).removeprefix("torch."),
        card=torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        cpu_threads=torch.get_num_threads(),
        torch=torch.__version__,
        load_average_1min=[round(load_before, 2), round(os.getloadavg()[0], 2)],  # others' work on the host
        date=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        defaults=dataclasses.asdict(engine.defaults),
    )
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
