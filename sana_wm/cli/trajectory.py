"""``sana-wm trajectory``: turn an action string (or a pose file) into a c2w array and a picture of it."""

from __future__ import annotations

import argparse
import logging

import numpy as np

from sana_wm.camera import action_to_c2w, load_c2w
from sana_wm.cli._args import add_camera_path_args
from sana_wm.utils.atomic import atomic_output

log = logging.getLogger("sana_wm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trajectory", help="action string or pose file -> (N+1,4,4) c2w .npy and a plot")
    add_camera_path_args(p, required=True)
    p.add_argument("--out", required=True, metavar="FILE.npy", help="where to write the float32 c2w array")
    p.add_argument(
        "--plot", metavar="FILE.png", help="also draw the path (top-down with frusta, height/angles)"
    )
    p.set_defaults(func=run)


def camera_path(args: argparse.Namespace) -> np.ndarray:
    """The (F,4,4) float32 c2w the arguments describe: a DSL rollout or a validated pose file."""
    if args.camera is not None:
        return load_c2w(args.camera)
    return action_to_c2w(
        args.action,
        mapping=args.action_mapping,
        translation_speed=args.translation_speed,
        rotation_speed_deg=args.rotation_speed_deg,
        pitch_limit_deg=args.pitch_limit_deg,
    )


def run(args: argparse.Namespace) -> int:
    c2w_F44 = camera_path(args)
    with atomic_output(args.out) as tmp, open(tmp, "wb") as f:
        np.save(f, c2w_F44)
    log.info("wrote %s: %d poses, %.2f m travelled", args.out, len(c2w_F44), path_length_m(c2w_F44))
    if args.plot:
        from sana_wm.viz.trajectory_plot import plot_trajectory

        plot_trajectory(c2w_F44, args.plot)
        log.info("wrote %s", args.plot)
    return 0


def path_length_m(c2w_F44: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(c2w_F44[:, :3, 3], axis=0), axis=1).sum())
