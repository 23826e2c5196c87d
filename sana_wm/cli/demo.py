"""``sana-wm demo``: the README's main job, runnable on a fresh CPU machine with no downloads.

Runs the bundled demo world model (:mod:`sana_wm.inference.demo_model`) as ``sana-wm generate`` does with no
weight flags: from the bundled held-out first frame (or ``--image``) along the default action string (or
``--action`` / ``--camera``), and also draws the camera path. Writes ``demo.mp4`` (with the action HUD),
``demo.json`` (the sidecar: settings, poses, timings), ``trajectory.png`` and ``trajectory.npy`` to ``--out``.
"""

from __future__ import annotations

import argparse

from sana_wm.cli._args import (
    add_camera_path_args,
    add_lora_args,
    flag,
    job_fields,
    model_source,
    runtime_settings,
    silence_library_progress,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the out-of-the-box demo: the bundled world model on the CPU, no downloads"
    )
    add_camera_path_args(p, required=False)
    p.add_argument("--image", metavar="FILE", help="first frame (default: the bundled held-out frame)")
    p.add_argument(
        *flag("--num_frames"), dest="num_frames", type=int, help="frames to generate (default 81, 5 s)"
    )
    p.add_argument("--steps", type=int, help="sampling steps (default: the model's, 30)")
    p.add_argument("--seed", type=int, help="noise seed (default 42)")
    p.add_argument("--device", help="default: cuda if available, else cpu")
    p.add_argument(
        "--quantize", choices=("none", "fp8"), default="none", help="fp8: weights stored in float8"
    )
    add_lora_args(p)
    p.add_argument(*flag("--demo_dir"), dest="demo_dir", metavar="DIR", help="another demo-model folder")
    p.add_argument(*flag("--no_action_overlay"), dest="no_action_overlay", action="store_true", help="no HUD")
    p.add_argument("--out", default="outputs/demo", metavar="DIR", help="output folder (outputs/demo)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sana_wm.inference.job import GenerateJob, run_job

    quiet = bool(getattr(args, "quiet", False))
    if quiet:
        silence_library_progress()
    job = GenerateJob(
        source=model_source(args),
        runtime=runtime_settings(args),
        output_dir=args.out,
        name="demo",
        overlay=not args.no_action_overlay,
        trajectory=True,
        output_flag="--out",
        command="demo",
        **job_fields(args),
    )
    result = run_job(job, progress=not quiet)
    print(
        f"wrote {result.video} ({result.output.num_frames} frames), {result.sidecar}, trajectory.npy and "
        f"trajectory.png in {result.timings['total']:.1f} s "
        "(frame 0 is the VAE's reconstruction of the input)"
    )
    return 0
