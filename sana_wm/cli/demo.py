"""``sana-wm demo``: the README's main job, runnable on a fresh CPU machine with no downloads.

Until the bundled demo world model exists it shows the camera-control layer: the default action string
rolled out into a trajectory, a picture of it, and a synthetic fly-through with the action HUD.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from sana_wm.cli._args import DEFAULT_ACTION, add_camera_path_args
from sana_wm.cli.overlay_demo import add_video_args, render
from sana_wm.cli.trajectory import camera_path
from sana_wm.utils.atomic import atomic_output
from sana_wm.viz.trajectory_plot import plot_trajectory

log = logging.getLogger("sana_wm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the out-of-the-box demo (no downloads, CPU)")
    add_camera_path_args(p, required=False)
    add_video_args(p)
    p.add_argument("--out", default="outputs/demo", metavar="DIR", help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.camera is None and args.action is None:
        args.action = DEFAULT_ACTION
    c2w_F44 = camera_path(args)
    with atomic_output(out / "trajectory.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, c2w_F44)
    plot_trajectory(c2w_F44, out / "trajectory.png", title=args.action or args.camera)
    log.info("wrote %s and %s (%d poses)", out / "trajectory.npy", out / "trajectory.png", len(c2w_F44))
    render(args, str(out / "overlay_demo.mp4"))
    return 0
