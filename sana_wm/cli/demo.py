"""``sana-wm demo``: the README's main job, runnable on a fresh CPU machine with no downloads.

Runs the bundled demo world model (:mod:`sana_wm.demo_model`) exactly as ``sana-wm generate`` does with no
weight flags: from the bundled held-out first frame (or ``--image``) along the default action string (or
``--action`` / ``--camera``), and also draws the camera path. Writes ``demo.mp4`` (with the action HUD),
``demo.json`` (the sidecar: settings, poses, timings), ``trajectory.png`` and ``trajectory.npy`` to ``--out``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from sana_wm.cli import generate
from sana_wm.cli._args import add_camera_path_args, flag
from sana_wm.utils.atomic import atomic_output
from sana_wm.utils.video_io import read_sidecar
from sana_wm.viz.trajectory_plot import plot_trajectory

log = logging.getLogger("sana_wm")


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
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", help="default: cuda if available, else cpu")
    p.add_argument(*flag("--demo_dir"), dest="demo_dir", metavar="DIR", help="another demo-model folder")
    p.add_argument(*flag("--no_action_overlay"), dest="no_action_overlay", action="store_true", help="no HUD")
    p.add_argument("--out", default="outputs/demo", metavar="DIR", help="output folder (outputs/demo)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    argv = ["--output_dir", str(out), "--name", "demo", "--seed", str(args.seed)]
    for name in ("action", "camera", "image", "num_frames", "steps", "device", "demo_dir"):
        value = getattr(args, name)
        if value is not None:
            argv += [f"--{name}", str(value)]
    argv += ["--action_mapping", args.action_mapping]
    for name in ("translation_speed", "rotation_speed_deg", "pitch_limit_deg"):
        if getattr(args, name) is not None:
            argv += [f"--{name}", str(getattr(args, name))]
    if args.no_action_overlay:
        argv.append("--no_action_overlay")
    parser = argparse.ArgumentParser(prog="sana-wm demo")
    generate.register(parser.add_subparsers())
    gen_args = parser.parse_args(["generate", *argv])
    gen_args.quiet = bool(getattr(args, "quiet", False))
    status = generate.run(gen_args)
    if status:
        return status
    c2w_F44 = read_sidecar(out / "demo.json").c2w  # the poses of the frames written
    with atomic_output(out / "trajectory.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, c2w_F44)
    plot_trajectory(c2w_F44, out / "trajectory.png", title=gen_args.action or gen_args.camera)
    log.info("wrote %s and %s (%d poses)", out / "trajectory.npy", out / "trajectory.png", len(c2w_F44))
    return 0
