"""``sana-wm worlds render``: procedural clips in the official training-data layout."""

from __future__ import annotations

import argparse
import logging
import re

from sana_wm.camera import MAPPINGS
from sana_wm.cli._args import flag
from sana_wm.errors import InputError
from sana_wm.utils.device import resolve_device
from sana_wm.worlds.clips import RAW_DIR, ClipSettings, write_worlds

log = logging.getLogger("sana_wm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worlds", help="procedural worlds: render training clips")
    worlds = p.add_subparsers(dest="worlds_command", metavar="ACTION")
    worlds.required = True
    r = worlds.add_parser(
        "render", help="render random clips (mp4 + captions + cameras) in the official zip layout"
    )
    r.add_argument(*flag("--num_clips"), dest="num_clips", type=int, required=True)
    r.add_argument("--frames", type=int, default=121, help="frames per clip, 8k+1 (default 121)")
    r.add_argument("--size", default="352x640", metavar="HxW", help="frame size (default 352x640)")
    r.add_argument("--out", required=True, metavar="DIR", help="dataset directory (raw/ is written here)")
    r.add_argument("--seed", type=int, default=0, help="clip i is drawn from (seed, i) alone")
    r.add_argument(
        "--mapping",
        choices=[*sorted(MAPPINGS), "mixed"],
        default="mixed",
        help="action mapping of action-string paths (default: mixed, half each)",
    )
    r.add_argument(
        "--trajectory",
        choices=["actions", "smooth", "mixed"],
        default="mixed",
        help="random action strings, smooth free-form paths, or half each (default)",
    )
    r.add_argument("--fps", type=float, default=16.0)
    r.add_argument(*flag("--clips_per_shard"), dest="clips_per_shard", type=int, default=64)
    r.add_argument(*flag("--no_shadows"), dest="no_shadows", action="store_true")
    r.add_argument("--device", default="cpu", help="torch device for the ray-caster (default cpu)")
    r.set_defaults(func=run)


def parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if match is None:
        raise InputError(f"--size: expected HEIGHTxWIDTH like 352x640, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def run(args: argparse.Namespace) -> int:
    height, width = parse_size(args.size)
    settings = ClipSettings(
        num_frames=args.frames,
        height=height,
        width=width,
        seed=args.seed,
        fps=args.fps,
        trajectory=args.trajectory,
        mapping=args.mapping,
        shadows=not args.no_shadows,
    )
    shards = write_worlds(
        args.out,
        settings,
        args.num_clips,
        clips_per_shard=args.clips_per_shard,
        device=resolve_device(args.device),
        progress=not args.quiet,
    )
    log.info("%d clips in %d shard(s) under %s/%s", args.num_clips, len(shards), args.out, RAW_DIR)
    return 0
