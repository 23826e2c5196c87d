"""Annotated clips written in the official training layout (:mod:`sana_wm.data.layout`).

Per kept clip the work folder holds ``clip.mp4`` (the cropped 16 fps frames), ``camera.npz`` (``c2w``
relative to the first frame in reconstruction units, ``intrinsics`` in pixels of the clip) and
``record.json``. :func:`write_shards` packs the kept clips, sorted by key, into shards of
``clips_per_shard``:

- ``raw/annotated_<n>.zip``: ``<key>.json`` (``prompt``, ``width``, ``height``, then ``annotation``: how the
  clip was made and checked) and ``<key>.mp4``;
- ``raw/annotated_<n>_camera.npz``: poses and intrinsics;
- ``raw/annotated_<n>_metric_scale_stats.json``: ``{key: {"median": metres per unit, "source", ...}}``;
- ``raw/annotated_<n><suffix>.json`` for the filter scores: ``_flow_dis``, ``_luma``, ``_saturation``
  (cheap statistics, our units) and ``_camera_qc`` (the camera checks' numbers), each ``{key: {...}}``
  with the score under ``"score"``.

The zip is written last, so a shard with a zip is complete; shards are rewritten from the work folders on
every run (cheap: members are stored, not compressed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sana_wm.data.layout import shard_paths, write_camera_sidecar, write_json, write_zip

RAW_DIR = "raw"
SHARD_PREFIX = "annotated_"
SCORE_SIDECARS = {"_flow_dis": "flow_dis", "_luma": "luma", "_saturation": "saturation"}


def clip_json(record: dict[str, Any]) -> dict[str, Any]:
    """The ``<key>.json`` of a kept clip: the official fields first, the annotation after."""
    return {
        "prompt": record["prompt"],
        "width": record["width"],
        "height": record["height"],
        "num_frames": record["num_frames"],
        "fps": record["fps"],
        "annotation": {k: v for k, v in record.items() if k not in ("prompt", "width", "height")},
    }


def write_shards(
    out_dir: Path, work_dir: Path, records: list[dict[str, Any]], clips_per_shard: int
) -> list[Path]:
    """Pack the kept clips of ``records`` into shards under ``out_dir / raw``; returns the shard zips.
    Shards left from an earlier run with more shards are removed."""
    kept = sorted((r for r in records if r.get("kept")), key=lambda r: r["key"])
    raw_dir = out_dir / RAW_DIR
    raw_dir.mkdir(parents=True, exist_ok=True)
    shards = []
    for number, start in enumerate(range(0, len(kept), clips_per_shard)):
        group = kept[start : start + clips_per_shard]
        raw_zip = raw_dir / f"{SHARD_PREFIX}{number:05d}.zip"
        camera_npz, scale_json = shard_paths(raw_zip)
        poses, intrinsics = [], []
        for record in group:
            with np.load(work_dir / record["key"] / "camera.npz") as npz:
                poses.append(npz["c2w"])
                intrinsics.append(npz["intrinsics"])
        write_camera_sidecar(camera_npz, [r["key"] for r in group], poses, intrinsics)
        write_json(scale_json, {r["key"]: r["metric_scale"] for r in group})
        stem = str(raw_zip.with_suffix(""))
        for suffix, name in SCORE_SIDECARS.items():
            write_json(Path(stem + suffix + ".json"), {r["key"]: {"score": r["stats"][name]} for r in group})
        write_json(Path(stem + "_camera_qc.json"), {r["key"]: r["camera_qc"] for r in group})
        members: list[tuple[str, bytes | Path]] = []
        for record in group:
            members.append(
                (f"{record['key']}.json", (json.dumps(clip_json(record), indent=1) + "\n").encode())
            )
            members.append((f"{record['key']}.mp4", work_dir / record["key"] / "clip.mp4"))
        write_zip(raw_zip, members)
        shards.append(raw_zip)
    for stale in sorted(raw_dir.glob(f"{SHARD_PREFIX}*.zip"))[len(shards) :]:
        for path in raw_dir.glob(f"{stale.stem}*"):
            path.unlink()
    return shards
