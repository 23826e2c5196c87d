"""``sana-wm bench``: time the stage-1 transformer against the diffusers peer (or whole generations) -> JSON.

Argument parsing only; the benchmark lives in :mod:`sana_wm.bench`. Every setting is checked before anything
is built, and the JSON is written only when the whole run succeeds.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

from sana_wm.inference.offload import prefer_expandable_segments
from sana_wm.inference.request import OFFLOAD_MODES
from sana_wm.ops import BACKENDS

log = logging.getLogger("sana_wm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench", help="benchmark the stage-1 transformer against diffusers (or a whole generation) -> JSON"
    )
    p.add_argument(
        "--mode",
        choices=("transformer", "pipeline", "stream"),
        default="transformer",
        help="transformer: one forward = one step, ours vs the peer (default); pipeline: whole generations; "
        "stream: a streamed generation chunk by chunk",
    )
    p.add_argument(
        "--frames",
        metavar="F[,F...]",
        help="pixel frame counts, comma-separated (default 161,321,961; pipeline 161; --tiny 9,17 / 17)",
    )
    p.add_argument("--repeats", type=int, default=2, help="timed forwards per length; the median counts")
    p.add_argument("--warmup", type=int, default=1, help="untimed forwards before them (default 1)")
    p.add_argument("--batch", type=int, default=2, help="samples per forward (default 2: CFG)")
    p.add_argument("--height", type=int, help="pixels, multiple of 32 (default 704; --tiny 128)")
    p.add_argument("--width", type=int, help="pixels, multiple of 32 (default 1280; --tiny 192)")
    p.add_argument("--text-len", type=int, default=300, help="text tokens per sample (default 300)")
    p.add_argument("--device", help="default cuda when available, else cpu")
    p.add_argument("--dtype", help="default bfloat16 on cuda, float32 on cpu")
    p.add_argument("--tiny", action="store_true", help="tiny preset, small grid (CPU smoke test)")
    p.add_argument(
        "--backend", default="torch", help=f"our ops backend: {', '.join(BACKENDS)} (default torch)"
    )
    p.add_argument(
        "--offload",
        default="none",
        help=f"none | group: our transformer's blocks streamed from the CPU ({', '.join(OFFLOAD_MODES)} "
        "in pipeline mode)",
    )
    p.add_argument(
        "--memory",
        default="none",
        help="our activation-memory plan: none (all at once), lean (5 heads / 16 frames at a time), "
        "lean-serial (lean, and the CFG rows one after the other), or H,F[,R] (heads and FFN frames at a "
        "time, batch rows per pass)",
    )
    p.add_argument(
        "--fp32-reference",
        action="store_true",
        help="also run ours in fp32 at the smallest length; report both bf16 outputs' error against it",
    )
    p.add_argument(
        "--breakdown", action="store_true", help="per-module time of ours (attn / cross_attn / mlp)"
    )
    p.add_argument("--no-peer", action="store_true", help="skip diffusers' SanaWMTransformer3DModel")
    p.add_argument("--steps", type=int, default=4, help="sampling steps per generation (pipeline mode)")
    p.add_argument("--matmul-size", type=int, help="side of the probe matmul (default 8192; --tiny 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", help="stream mode: comma-separated variants to run (default: all)")
    p.add_argument("--out", required=True, metavar="FILE.json", help="the report (benchmarks/results/...)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    prefer_expandable_segments(args.offload)  # before anything touches CUDA
    from sana_wm.bench import bench_settings, run_bench
    from sana_wm.bench.report import markdown, write_report
    from sana_wm.models import MemoryPlan

    settings = bench_settings(
        mode=args.mode,
        frames=args.frames,
        tiny=args.tiny,
        device=args.device,
        dtype=args.dtype,
        height=args.height,
        width=args.width,
        matmul_size=args.matmul_size,
        batch=args.batch,
        text_len=args.text_len,
        warmup=args.warmup,
        repeats=args.repeats,
        backend=args.backend,
        offload=args.offload,
        fp32_reference=args.fp32_reference,
        breakdown=args.breakdown,
        peer=not args.no_peer,
        steps=args.steps,
        seed=args.seed,
        variants=None if args.variants is None else tuple(v.strip() for v in args.variants.split(",")),
        # Further knobs of our forward go here.
        extra_forward_kwargs={"memory": MemoryPlan.named(args.memory)},
    )
    report = run_bench(settings, command=shlex.join(sys.argv))
    write_report(report, args.out)
    print(markdown(report))
    log.info("wrote %s", args.out)
    return 0
