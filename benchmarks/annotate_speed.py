"""Time per minute of video of ``sana-wm annotate`` (decode, filters, SfM, scale, packing).

Renders ``--clips`` procedural clips of ``--frames`` frames (smooth walks with exact poses, the validation
set's "smooth" kind, eval seeds; ``--render_device cuda`` renders fast on a GPU machine, and rendering is
not timed), then annotates them with the default settings at ``--size`` and reports wall time per minute
of 16 fps video (wall and process CPU time: on a shared machine the CPU time is the load-independent
number), per-stage totals, and the machine. SfM (pycolmap's CPU wheel) uses every core.

    python benchmarks/annotate_speed.py --out /tmp/annotate_speed --clips 2 --frames 481
    python benchmarks/annotate_speed.py --out $OUT/annotate_speed --clips 4 --frames 961 --render_device cuda

Writes ``OUT/speed.json`` and prints it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import time
from collections import Counter
from pathlib import Path

from sana_wm.annotate import AnnotateSettings, annotate
from sana_wm.annotate.validate import Case, render_validation_set


def machine() -> dict[str, object]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import av
    import pycolmap

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "pycolmap": pycolmap.__version__,
        "av": av.__version__,
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--frames", type=int, default=481, help="8k+1 frames per clip (481 = 30 s)")
    parser.add_argument("--size", default="352x640", help="render and clip size HxW")
    parser.add_argument("--render_device", default="cpu")
    parser.add_argument("--input", help="annotate this dataset or video folder instead of rendering")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    out = Path(args.out)
    start = time.perf_counter()
    chosen = [Case(i, "smooth", (60.0, 90.0)[i % 2], "full") for i in range(args.clips)]
    source = Path(args.input) if args.input else out / "rendered"
    if not args.input:
        render_validation_set(
            source,
            "eval",
            num_frames=args.frames,
            height=height,
            width=width,
            chosen=chosen,
            device=args.render_device,
        )
    render_s = time.perf_counter() - start
    shutil.rmtree(out / "annotated", ignore_errors=True)  # time a fresh run, not a resumed one
    settings = AnnotateSettings(height=height, width=width, clip_frames=args.frames)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    report = annotate(source, out / "annotated", settings, progress=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    minutes = report["summary"]["video_minutes"]
    stages: Counter[str] = Counter()
    for clip in report["clips"]:
        stages.update(clip.get("timings_s", {}))
    result = {
        "machine": machine(),
        "command": f"python benchmarks/annotate_speed.py --out {args.out} --clips {args.clips} "
        f"--frames {args.frames} --size {args.size} --render_device {args.render_device}"
        + (f" --input {args.input}" if args.input else ""),
        "clips": len(report["clips"]),
        "kept": report["summary"]["kept"],
        "frames_per_clip": args.frames,
        "size": [height, width],
        "video_minutes": minutes,
        "annotate_wall_s": wall,
        "seconds_per_video_minute": wall / minutes if minutes else None,
        "annotate_cpu_s": cpu,
        "cpu_seconds_per_video_minute": cpu / minutes if minutes else None,
        "load_average_1min_after": os.getloadavg()[0],
        "stage_seconds": dict(stages),
        "render_s_not_timed": render_s,
    }
    (out / "speed.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
