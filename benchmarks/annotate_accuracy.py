"""Accuracy of ``sana-wm annotate`` on procedural clips with exact poses (:mod:`sana_wm.annotate.validate`).

Renders the split's cases (motion kinds x texture levels, FOV cycling 40/60/90/110 deg) at 352 x 640,
annotates them with the default settings (camera-height prior 1.6 m, rescaled per clip to its true
height), and writes ``OUT/accuracy.json`` and ``OUT/accuracy.md`` (the table of docs/annotation.md).
Both steps resume: the render is kept once complete, finished clips are skipped.

    python benchmarks/annotate_accuracy.py --split dev --out /tmp/annotate_dev      # for development
    python benchmarks/annotate_accuracy.py --split eval --out /tmp/annotate_eval    # the reported table
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
import zipfile
from pathlib import Path

from sana_wm.annotate import AnnotateSettings, annotate
from sana_wm.annotate.validate import accuracy_rows, cases, markdown_table, meets_targets, render_case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["dev", "eval"], required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--limit", type=int, help="first N cases only")
    parser.add_argument(
        "--known_focal",
        action="store_true",
        help="annotate the already rendered cases again with each clip's true focal given (--focal), "
        "into OUT/known_focal: the accuracy when the intrinsics are known",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    settings = AnnotateSettings(
        height=352, width=640, clip_frames=args.frames, min_frames=min(33, args.frames)
    )
    if args.known_focal:
        return known_focal(out, settings)
    rendered, start = 0.0, time.perf_counter()
    for case in cases(args.frames)[: args.limit]:  # render one, annotate what exists (finished clips resume)
        begin = time.perf_counter()
        render_case(out / "rendered", args.split, case, args.frames, 352, 640, progress=True)
        rendered += time.perf_counter() - begin
        report = annotate(out / "rendered", out / "annotated", settings, progress=False)
        (out / "accuracy.md").write_text(
            markdown_table(accuracy_rows(report, out / "rendered", settings.camera_height_m))
        )
    rows = accuracy_rows(report, out / "rendered", settings.camera_height_m)
    summary = {
        "split": args.split,
        "clips": len(rows),
        "meet_all_targets": sum(meets_targets(r) for r in rows),
        "kept": sum(r["kept"] for r in rows),
        "render_s": rendered,
        "wall_s_this_run": time.perf_counter() - start,
    }
    (out / "accuracy.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")
    table = markdown_table(rows)
    (out / "accuracy.md").write_text(table)
    print(table)
    print(json.dumps(summary, indent=1))


def known_focal(out: Path, settings: AnnotateSettings) -> None:
    """Each FOV's rendered shards annotated with that FOV's true focal held fixed; one table."""
    rows = []
    shards = sorted((out / "rendered" / "raw").glob("validation_*.zip"))
    for hfov in sorted({case.hfov_deg for case in cases(settings.clip_frames)}):
        folder = out / "known_focal" / f"hfov_{int(hfov)}"
        raw = folder / "rendered" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for shard in shards:
            if f"_{int(hfov)}_" in zipfile.ZipFile(shard).namelist()[0]:
                for path in shard.parent.glob(shard.stem + "*"):
                    if not (raw / path.name).exists():
                        (raw / path.name).symlink_to(path)
        if not any(raw.iterdir()):
            continue
        focal = (settings.width / 2) / math.tan(math.radians(hfov) / 2)
        fixed = dataclasses.replace(settings, sfm=dataclasses.replace(settings.sfm, focal_px=focal))
        report = annotate(folder / "rendered", folder / "annotated", fixed, progress=False)
        rows += accuracy_rows(report, folder / "rendered", settings.camera_height_m)
    rows.sort(key=lambda r: r["key"])
    (out / "accuracy_known_focal.json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    table = markdown_table(rows)
    (out / "accuracy_known_focal.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
