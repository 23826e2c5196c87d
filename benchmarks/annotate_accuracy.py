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
import json
import logging
import time
from pathlib import Path

from sana_wm.annotate import AnnotateSettings, annotate
from sana_wm.annotate.validate import accuracy_rows, cases, markdown_table, meets_targets, render_case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["dev", "eval"], required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--limit", type=int, help="first N cases only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    settings = AnnotateSettings(
        height=352, width=640, clip_frames=args.frames, min_frames=min(33, args.frames)
    )
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


if __name__ == "__main__":
    main()
