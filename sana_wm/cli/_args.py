"""Argument groups shared by several subcommands (official underscore names, hyphen aliases)."""

from __future__ import annotations

import argparse

from sana_wm.camera import MAPPINGS

DEFAULT_ACTION = "w-80,jw-40,w-40,lw-60,w-100"


def flag(name: str) -> list[str]:
    """The official underscore spelling first, then its hyphen alias when the two differ."""
    alias = name.replace("_", "-")
    return [name, alias] if alias != name else [name]


def add_camera_path_args(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """``--action`` / ``--camera`` (exactly one) and the DSL's speed settings."""
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--action", help=f"WASD/IJKL action string, e.g. '{DEFAULT_ACTION}'")
    source.add_argument("--camera", metavar="FILE.npy", help="(F,4,4) camera-to-world poses, OpenCV axes")
    parser.add_argument(
        *flag("--action_mapping"),
        dest="action_mapping",
        choices=sorted(MAPPINGS),
        default="v1",
        help="action key mapping: v1 (default; a/d strafe, j/l yaw) or v2 (a/d yaw, j/l strafe)",
    )
    parser.add_argument(
        *flag("--translation_speed"), dest="translation_speed", type=float, help="metres per frame"
    )
    parser.add_argument(
        *flag("--rotation_speed_deg"), dest="rotation_speed_deg", type=float, help="degrees per frame"
    )
    parser.add_argument(*flag("--pitch_limit_deg"), dest="pitch_limit_deg", type=float, help="degrees")
