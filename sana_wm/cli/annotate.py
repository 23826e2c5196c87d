"""``sana-wm annotate``: videos -> clips with metric camera poses and intrinsics in the training layout.

The pipeline is :func:`sana_wm.annotate.annotate`; this module maps flags onto its settings.
"""

from __future__ import annotations

import argparse
import logging
import math

from sana_wm.cli._args import flag
from sana_wm.errors import InputError

log = logging.getLogger("sana_wm")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "annotate",
        help="videos -> clips with metric 6-DoF poses and intrinsics (pycolmap SfM) in the training layout",
    )
    p.add_argument(
        "input",
        metavar="INPUT",
        help="a video, a folder of videos, a list file (.txt, one path per line) or a dataset folder "
        "(raw/*.zip, e.g. from `worlds render`: its cameras are ground truth)",
    )
    p.add_argument("--out", required=True, metavar="DATASET", help="dataset folder: writes DATASET/raw/*.zip")
    p.add_argument(
        "--size", default="704x1280", metavar="HxW", help="clip size after the crop (default 704x1280)"
    )
    p.add_argument("--fps", type=float, default=16.0, help="output frame rate (default 16)")
    p.add_argument(
        *flag("--clip_frames"), dest="clip_frames", type=int, default=961, help="frames per clip, 8k+1 (961)"
    )
    p.add_argument(
        *flag("--min_frames"), dest="min_frames", type=int, default=33, help="drop shorter clips (33)"
    )
    p.add_argument(
        *flag("--camera_height"),
        dest="camera_height",
        default="1.6",
        metavar="M|none",
        help="camera height above the ground in metres for the metric-scale prior, or none (default 1.6)",
    )
    p.add_argument(
        *flag("--depth_model"),
        dest="depth_model",
        metavar="MODULE:FACTORY",
        help="metric-depth plug-in (sana_wm.annotate.plugins.MetricDepth) for the metric scale",
    )
    p.add_argument(
        *flag("--caption_model"),
        dest="caption_model",
        metavar="MODULE:FACTORY",
        help="caption plug-in (sana_wm.annotate.plugins.Captioner) for clips without a caption",
    )
    p.add_argument(*flag("--clips_per_shard"), dest="clips_per_shard", type=int, default=64)
    p.add_argument("--crf", type=int, default=18, help="x264 CRF of the clips (default 18)")
    sfm = p.add_argument_group("structure from motion")
    sfm.add_argument(
        *flag("--keyframe_stride"),
        dest="keyframe_stride",
        type=int,
        default=3,
        help="map every n-th frame (3)",
    )
    sfm.add_argument(
        *flag("--sfm_size"), dest="sfm_size", type=int, default=640, help="long side of SfM frames (640)"
    )
    sfm.add_argument(
        "--focal",
        type=float,
        metavar="PX",
        help="known focal length in pixels of the output clip (held fixed; default: self-calibrated)",
    )
    sfm.add_argument("--threads", type=int, default=-1, help="SfM threads (default: all cores)")
    qc = p.add_argument_group("filters")
    qc.add_argument(*flag("--min_registered"), dest="min_registered", type=float, default=0.9)
    qc.add_argument(*flag("--max_reproj"), dest="max_reproj", type=float, default=1.5, help="pixels")
    qc.add_argument(*flag("--cut_threshold"), dest="cut_threshold", type=float, default=27.0)
    p.set_defaults(func=run)


def _camera_height(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InputError(f"--camera_height: expected metres or none, got {text!r}")
    return value


def _focal(value: float | None) -> float | None:
    if value is None:
        return None
    if not (math.isfinite(value) and value > 0):
        raise InputError(f"--focal: must be a positive number of pixels, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from sana_wm.annotate import AnnotateSettings, FilterSettings, SfmSettings, annotate
    from sana_wm.annotate.plugins import Captioner, MetricDepth, load_plugin
    from sana_wm.cli.worlds import parse_size

    height, width = parse_size(args.size)
    filters = dataclasses.replace(
        FilterSettings(),
        min_registered=args.min_registered,
        max_reproj_px=args.max_reproj,
        cut_threshold=args.cut_threshold,
    )
    settings = AnnotateSettings(
        fps=args.fps,
        height=height,
        width=width,
        clip_frames=args.clip_frames,
        min_frames=args.min_frames,
        camera_height_m=_camera_height(args.camera_height),
        clips_per_shard=args.clips_per_shard,
        crf=args.crf,
        sfm=SfmSettings(
            keyframe_stride=args.keyframe_stride,
            max_image_size=args.sfm_size,
            num_threads=args.threads,
            focal_px=_focal(args.focal),
        ),
        filters=filters,
    )
    depth = load_plugin(args.depth_model, MetricDepth, "--depth_model") if args.depth_model else None
    captioner = load_plugin(args.caption_model, Captioner, "--caption_model") if args.caption_model else None
    report = annotate(
        args.input, args.out, settings, depth_model=depth, captioner=captioner, progress=not args.quiet
    )
    summary = report["summary"]
    log.info(
        "%d clips: %d kept, %d dropped%s; %d broken video(s); report in %s/annotate_report.txt",
        summary["clips"],
        summary["kept"],
        summary["dropped"],
        "".join(f"; {n} {reason}" for reason, n in summary["drop_reasons"].items()),
        summary["broken_videos"],
        args.out,
    )
    return 0
