"""``sana-wm overlay-demo``: a synthetic fly-through along a camera path with the action HUD."""

from __future__ import annotations

import argparse
import logging

from sana_wm.camera import align_num_frames, load_intrinsics
from sana_wm.cli._args import DEFAULT_ACTION, add_camera_path_args, flag
from sana_wm.cli.trajectory import camera_path
from sana_wm.demo import render_path_video
from sana_wm.errors import InputError
from sana_wm.inference.request import MAX_SIDE
from sana_wm.utils.atomic import check_output_file
from sana_wm.viz.overlay import HUD_KEY_LABELS

log = logging.getLogger("sana_wm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "overlay-demo", help="render a synthetic video along a camera path with the WASD + joystick HUD"
    )
    add_camera_path_args(p, required=False)
    add_video_args(p)
    p.add_argument("--out", default="outputs/overlay_demo.mp4", metavar="FILE.mp4")
    p.set_defaults(func=run)


def add_video_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        *flag("--num_frames"),
        dest="num_frames",
        type=int,
        default=161,
        help="frames to render (capped by the path length, snapped to 8k+1; default 161)",
    )
    p.add_argument(
        "--intrinsics",
        metavar="FILE.npy",
        help="(4,), (3,3), (F,4) or (F,3,3) intrinsics, pixels of the rendered frames (default: 60 deg FOV)",
    )
    p.add_argument("--fps", type=float, default=16.0)
    p.add_argument("--height", type=int, default=704)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument(
        *flag("--no_action_overlay"),
        dest="no_action_overlay",
        action="store_true",
        help="skip rendering the WASD + joystick overlay",
    )


def render(args: argparse.Namespace, out: str) -> None:
    """Render the camera path the arguments describe into ``out`` (shared with ``sana-wm demo``)."""
    for name in ("height", "width"):
        value = getattr(args, name)
        if value < 16 or value % 2 or value > MAX_SIDE:
            raise InputError(f"--{name}: must be an even number of pixels from 16 to {MAX_SIDE}, got {value}")
    if args.num_frames < 1:
        raise InputError(f"--num_frames: must be >= 1, got {args.num_frames}")
    check_output_file(out, "--out", suffix=".mp4")
    if args.camera is None and args.action is None:
        args.action = DEFAULT_ACTION
    c2w_F44 = camera_path(args).c2w_F44
    num_frames = align_num_frames(args.num_frames, len(c2w_F44))
    intrinsics_F4 = None
    if args.intrinsics is not None:
        intrinsics_F4 = load_intrinsics(args.intrinsics, num_frames, image_hw=(args.height, args.width))
    path = render_path_video(
        c2w_F44[:num_frames],
        out,
        height=args.height,
        width=args.width,
        fps=args.fps,
        intrinsics_F4=intrinsics_F4,
        overlay=not args.no_action_overlay,
        key_labels=HUD_KEY_LABELS[args.action_mapping],
        progress=not args.quiet,
        settings={"action": args.action, "camera": args.camera, "action_mapping": args.action_mapping},
    )
    log.info("wrote %s (%d frames at %g fps) and %s", path, num_frames, args.fps, path.with_suffix(".json"))


def run(args: argparse.Namespace) -> int:
    render(args, args.out)
    return 0
