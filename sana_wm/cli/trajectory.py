"""``sana-wm trajectory``: turn an action string (or a pose file) into a c2w array and a picture of it."""

from __future__ import annotations

import argparse
import logging

from sana_wm.cli._args import add_camera_path_args
from sana_wm.inference.request import CameraPath
from sana_wm.utils.atomic import check_output_file

log = logging.getLogger("sana_wm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trajectory", help="action string or pose file -> (N+1,4,4) c2w .npy and a plot")
    add_camera_path_args(p, required=True)
    p.add_argument("--out", required=True, metavar="FILE.npy", help="where to write the float32 c2w array")
    p.add_argument(
        "--plot", metavar="FILE.png", help="also draw the path (top-down with frusta, height/angles)"
    )
    p.set_defaults(func=run)


def camera_path(args: argparse.Namespace) -> CameraPath:
    """The camera path the arguments describe: a DSL rollout or a validated pose file."""
    if args.camera is not None:
        return CameraPath.from_file(args.camera, mapping=args.action_mapping)
    return CameraPath.from_action(
        args.action,
        mapping=args.action_mapping,
        translation_speed=args.translation_speed,
        rotation_speed_deg=args.rotation_speed_deg,
        pitch_limit_deg=args.pitch_limit_deg,
    )


def run(args: argparse.Namespace) -> int:
    from sana_wm.viz.trajectory_plot import path_length_m, save_trajectory

    check_output_file(args.out, "--out", suffix=".npy")
    if args.plot:
        check_output_file(args.plot, "--plot", suffix=".png")
    c2w_F44 = camera_path(args).c2w_F44
    save_trajectory(c2w_F44, args.out, args.plot, title=args.action or args.camera)
    log.info("wrote %s: %d poses, %.2f m travelled", args.out, len(c2w_F44), path_length_m(c2w_F44))
    if args.plot:
        log.info("wrote %s", args.plot)
    return 0
