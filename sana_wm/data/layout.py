"""The official SANA-WM training-data layout on disk: shard zips and their sidecars.

A dataset is a RAW directory of shards plus a LATENT directory. For a shard ``<stem>``:

- ``RAW/<stem>.zip``: one ``<key>.json`` per clip, a JSON object with at least ``"prompt"`` (caption),
  ``"width"`` and ``"height"`` (pixels the clip's intrinsics refer to). Other members (our ``<key>.mp4``
  with the frames) are ignored by readers; any other JSON fields are kept as metadata.
- ``RAW/<stem>_camera.npz`` (optional): ``ids`` (N,) unicode clip keys, ``ranges`` (N, 2) int64
  ``[start, count]`` rows into the concatenated ``pose`` (sum F, 4, 4) float32 camera-to-world matrices
  (OpenCV axes) and ``intrinsics`` (sum F, 4) float32 ``[fx, fy, cx, cy]`` in pixels of the clip's
  width x height. A clip without an entry gets identity cameras when read.
- ``RAW/<stem>_metric_scale_stats.json`` (optional): key -> number or object; the clip's translation scale
  factor is reduced from it by :func:`numeric_score` (our writer stores ``{"median": s}``); absent or
  non-finite means 1.0. Readers multiply every translation of the clip by it.
- ``LATENT/<stem>.zip``: one ``<key>.npz`` per clip with array ``z``, the normalised VAE latents in
  (C, T, h, w) layout.
- Optional ``RAW/<stem><suffix>.json`` / ``.jsonl`` sidecars hold extra captions or filter scores per key
  (a JSON object keyed by clip, a JSON list of records with ``"key"``, or JSON lines of such records).
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sana_wm.errors import InputError
from sana_wm.utils.atomic import atomic_output

CAMERA_SUFFIX = "_camera.npz"
METRIC_SCALE_SUFFIX = "_metric_scale_stats.json"
LATENT_KEY = "z"
# Fields a score record is reduced by, in order of preference (the official reader's order).
SCORE_FIELDS = (
    "score",
    "vmafmotion_score",
    "dover_score",
    "quality_pass",
    "entity_count",
    "unimatch_flow_score",
    "median",
)


def numeric_score(value: Any) -> float | None:
    """Reduce a sidecar record to one number: a number itself; the mean of a list's numbers; for an object
    the first of :data:`SCORE_FIELDS` that reduces, else its first value that does; otherwise None."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        numbers = [float(v) for v in value if isinstance(v, int | float)]
        return sum(numbers) / len(numbers) if numbers else None
    if isinstance(value, dict):
        for name in SCORE_FIELDS:
            if name in value and (score := numeric_score(value[name])) is not None:
                return score
        for item in value.values():
            if (score := numeric_score(item)) is not None:
                return score
    return None


def read_keyed_sidecar(base: str | os.PathLike[str]) -> dict[str, Any]:
    """Records by clip key from ``<base>.json`` (object, or list of records with "key") or else
    ``<base>.jsonl``; {} when neither exists."""
    json_path, jsonl_path = Path(f"{os.fspath(base)}.json"), Path(f"{os.fspath(base)}.jsonl")
    if json_path.is_file():
        data = json.loads(json_path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            return data
        if isinstance(data, list):
            return {str(r["key"]): r for r in data if isinstance(r, dict) and "key" in r}
        return {}
    if jsonl_path.is_file():
        records = (
            json.loads(line) for line in jsonl_path.read_text(encoding="utf-8").splitlines() if line.strip()
        )
        return {str(r["key"]): r for r in records if isinstance(r, dict) and "key" in r}
    return {}


def metric_scale(records: Mapping[str, Any], key: str) -> float:
    """The clip's translation scale factor from a metric-scale sidecar's records (1.0 when unusable)."""
    score = numeric_score(records.get(key))
    return float(score) if score is not None and math.isfinite(score) else 1.0


def shard_paths(raw_zip: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(camera sidecar, metric-scale sidecar)`` paths of the shard whose raw zip is ``raw_zip``."""
    raw_zip = Path(raw_zip)
    stem = raw_zip.with_suffix("")
    return Path(f"{stem}{CAMERA_SUFFIX}"), Path(f"{stem}{METRIC_SCALE_SUFFIX}")


class CameraTable:
    """A loaded ``_camera.npz`` sidecar: per-clip poses and intrinsics by key."""

    def __init__(self, ids: Sequence[str], ranges_N2: np.ndarray, pose: np.ndarray, intrinsics: np.ndarray):
        self._rows = {str(key): i for i, key in enumerate(ids)}
        self.ranges_N2 = np.asarray(ranges_N2, dtype=np.int64).reshape(-1, 2)
        self.pose = np.asarray(pose)
        self.intrinsics = np.asarray(intrinsics)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> CameraTable | None:
        """Read a camera sidecar; None when the file does not exist."""
        if not Path(path).is_file():
            return None
        with np.load(path, allow_pickle=False) as npz:
            missing = {"ids", "ranges", "pose", "intrinsics"} - set(npz.files)
            if missing:
                raise InputError(f"{path}: camera sidecar lacks array(s) {', '.join(sorted(missing))}")
            return cls(npz["ids"].tolist(), npz["ranges"], npz["pose"], npz["intrinsics"])

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def get(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """``(c2w_F44, intrinsics_F4)`` float32 of clip ``key``, or None if the table has no such clip."""
        row = self._rows.get(key)
        if row is None:
            return None
        start, count = (int(v) for v in self.ranges_N2[row])
        return (
            self.pose[start : start + count].astype(np.float32),
            self.intrinsics[start : start + count].astype(np.float32),
        )


def write_camera_sidecar(
    path: str | os.PathLike[str],
    keys: Sequence[str],
    c2w: Sequence[np.ndarray],
    intrinsics: Sequence[np.ndarray],
) -> None:
    """Write a ``_camera.npz`` sidecar (uncompressed npz) for clips ``keys`` in order, atomically.

    ``c2w[i]`` is (F_i, 4, 4) and ``intrinsics[i]`` (F_i, 4) for clip i; stored as float32.
    """
    counts = [len(p) for p in c2w]
    if [len(k) for k in intrinsics] != counts or len(keys) != len(counts):
        raise ValueError("write_camera_sidecar: keys, c2w and intrinsics must describe the same clips")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    arrays = {
        "ids": np.array([str(k) for k in keys], dtype=np.str_),
        "ranges": np.stack([starts, np.array(counts, dtype=np.int64)], axis=1).reshape(-1, 2),
        "pose": np.concatenate([np.asarray(p, np.float32).reshape(-1, 4, 4) for p in c2w]).reshape(-1, 4, 4),
        "intrinsics": np.concatenate([np.asarray(k, np.float32).reshape(-1, 4) for k in intrinsics]),
    }
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as UTF-8 JSON, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """An uncompressed ``.npz`` file's bytes holding ``arrays``."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def write_zip(path: str | os.PathLike[str], members: Iterable[tuple[str, bytes | Path]]) -> None:
    """Write a zip of ``(name, bytes or file path)`` members, stored uncompressed (mp4 and float latents
    barely compress), atomically."""
    with atomic_output(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, content in members:
            if isinstance(content, Path):
                archive.write(content, arcname=name)
            else:
                archive.writestr(name, content)
