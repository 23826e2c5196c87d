"""``sana-wm annotate``: videos -> clips with metric 6-DoF poses and intrinsics in the training layout.

Per video (:func:`annotate`): decode at ``fps`` with the official crop (:mod:`~sana_wm.annotate.decode`);
split at scene cuts and into windows of at most ``clip_frames`` frames (trimmed to ``8k + 1``, what the
VAE needs); per window, a clip ``<video>_<n>``:

1. cheap filters (:mod:`~sana_wm.annotate.filters`): too short, too dark, static, too little or too much
   motion: dropped before SfM;
2. SfM (:mod:`~sana_wm.annotate.sfm`); frames it cannot register get interpolated poses (and count
   against the registered fraction);
3. the metric-scale chain (:mod:`~sana_wm.annotate.scale`);
4. camera filters; when the input carries ground truth, the errors against it are recorded
   (``gt_check``) next to the decision, never used for it.

Everything about a clip lands in ``DATASET/annotate_work/<key>/`` (``record.json`` written last), so a
rerun skips finished clips; a video that cannot be decoded is one ``broken`` line of the report. At the
end the kept clips are packed into the official layout (:mod:`~sana_wm.annotate.output`) and the report
is written: ``annotate_report.json`` (every number) and ``annotate_report.txt`` (one line per clip).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from sana_wm.annotate.decode import Source, decode_frames, list_sources
from sana_wm.annotate.filters import content_score, thumbnail
from sana_wm.annotate.output import write_shards
from sana_wm.annotate.settings import VAE_FRAMES, AnnotateSettings, Window
from sana_wm.data.layout import write_json
from sana_wm.errors import InputError
from sana_wm.utils.video_io import VideoWriter

log = logging.getLogger(__name__)

FORMAT = "sana-wm-annotate/1"
WORK_DIR, SETTINGS_FILE = "annotate_work", "annotate_settings.json"
REPORT_JSON, REPORT_TXT = "annotate_report.json", "annotate_report.txt"


def check_output(out_dir: Path, settings: AnnotateSettings) -> None:
    """Refuse an ``--out`` that is a file or holds a run made with other settings (before any output)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out: {out_dir} exists and is not a folder")
    existing = out_dir / SETTINGS_FILE
    if existing.is_file():
        found = json.loads(existing.read_text(encoding="utf-8"))
        wanted = _settings_json(settings)
        if found != wanted:
            changed = sorted(k for k in wanted.keys() | found.keys() if found.get(k) != wanted.get(k))
            raise InputError(f"--out: {out_dir} holds a run with other settings ({', '.join(changed)})")


def _settings_json(settings: AnnotateSettings) -> dict[str, Any]:
    return json.loads(json.dumps({"format": FORMAT, **dataclasses.asdict(settings)}))


def annotate(
    input_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    settings: AnnotateSettings | None = None,
    *,
    depth_model: object | None = None,
    captioner: object | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Annotate every video of ``input_path`` into the dataset ``out_dir``; returns the report."""
    settings = settings if settings is not None else AnnotateSettings()
    from tqdm import tqdm

    from sana_wm.annotate.clip import process_clip

    try:
        import pycolmap  # noqa: F401  (SfM; checked before anything is written)
    except ImportError as err:
        raise InputError('annotate needs pycolmap: pip install "sana-wm[annotate]"') from err
    sources = list_sources(input_path)
    out = Path(out_dir)
    check_output(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / SETTINGS_FILE, _settings_json(settings))
    work = out / WORK_DIR
    records: list[dict[str, Any]] = []
    broken: list[dict[str, str]] = []
    start = time.perf_counter()
    bar = tqdm(sources, desc="annotate", unit="video", disable=not progress)
    for source in bar:
        try:
            for window in _windows(source, settings, work):
                record = _load_record(work, window.key)
                if record is None:
                    record = process_clip(window, source, settings, work, depth_model, captioner)
                records.append(record)
                bar.set_postfix(
                    kept=sum(r["kept"] for r in records), dropped=sum(not r["kept"] for r in records)
                )
        except Exception as err:  # a video that cannot be read is a line of the report, not a crash
            message = str(err) if isinstance(err, InputError) else f"{type(err).__name__}: {err}"
            broken.append({"source": str(source.path), "member": source.member or "", "error": message})
            log.warning("broken: %s", message)
    shards = write_shards(out, work, records, settings.clips_per_shard)
    report = _report(records, broken, shards, out, settings, time.perf_counter() - start)
    write_json(out / REPORT_JSON, report)
    (out / REPORT_TXT).write_text(_report_lines(records, broken), encoding="utf-8")
    return report


def _load_record(work: Path, key: str) -> dict[str, Any] | None:
    path = work / key / "record.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _windows(source: Source, settings: AnnotateSettings, work: Path):
    """Clip windows of ``source``: split at scene cuts and every ``clip_frames`` frames; each yielded
    after its mp4 is closed (length 8k + 1, the last < 8 frames dropped)."""
    import cv2

    max_side = settings.sfm.max_image_size
    scale = min(1.0, max_side / max(settings.height, settings.width))
    small_size = (round(settings.width * scale), round(settings.height * scale))
    count = 0
    window: Window | None = None
    previous_thumb = None
    try:
        for index, _, frame in decode_frames(
            source, fps=settings.fps, height=settings.height, width=settings.width
        ):
            small = frame if scale == 1.0 else cv2.resize(frame, small_size, interpolation=cv2.INTER_AREA)
            thumb = thumbnail(small)
            cut = (
                previous_thumb is not None
                and content_score(previous_thumb, thumb) > settings.filters.cut_threshold
            )
            previous_thumb = thumb
            if window is not None and (cut or window.length >= settings.clip_frames):
                window.ends_at_cut = cut
                yield _close(window)
                window = None
            if window is None:
                key = f"{source.name}_{count:03d}"
                count += 1
                done = (work / key / "record.json").is_file()
                writer = (
                    None if done else VideoWriter(work / key / "clip.mp4", fps=settings.fps, crf=settings.crf)
                )
                if writer is not None:
                    shutil.rmtree(work / key, ignore_errors=True)
                    writer.__enter__()
                window = Window(key, writer)
            _add(window, frame, small, thumb, index)
        if window is not None:
            yield _close(window)
            window = None
    finally:
        if window is not None and window.writer is not None:
            window.writer.__exit__(RuntimeError, RuntimeError("aborted"), None)


def _add(window: Window, frame: np.ndarray, small: np.ndarray, thumb: np.ndarray, index: int) -> None:
    """Append a frame; the mp4 gets the first frame at once, then whole groups of 8 (a clip already done
    on an earlier run only counts them)."""
    window.small.append(small)
    window.thumbs.append(thumb)
    window.source_index.append(index)
    window.pending.append(frame if window.writer is not None else None)
    if window.length == 1 or len(window.pending) == VAE_FRAMES:
        if window.writer is not None:
            window.writer.write_many(window.pending)
        window.written += len(window.pending)
        window.pending.clear()


def _close(window: Window) -> Window:
    window.pending.clear()
    n = window.written
    window.small, window.thumbs, window.source_index = (
        window.small[:n],
        window.thumbs[:n],
        window.source_index[:n],
    )
    if window.writer is not None:
        if n:
            window.writer.__exit__(None, None, None)
        else:
            window.writer.__exit__(RuntimeError, RuntimeError("empty"), None)
    return window


def _report(
    records: list[dict[str, Any]],
    broken: list[dict[str, str]],
    shards: list[Path],
    out: Path,
    settings: AnnotateSettings,
    seconds: float,
) -> dict[str, Any]:
    reasons = Counter(reason.split(" (")[0] for r in records if not r["kept"] for reason in r["reasons"])
    frames = sum(r["num_frames"] for r in records)
    return {
        "format": FORMAT,
        "settings": _settings_json(settings),
        "summary": {
            "clips": len(records),
            "kept": sum(r["kept"] for r in records),
            "dropped": sum(not r["kept"] for r in records),
            "broken_videos": len(broken),
            "drop_reasons": dict(reasons.most_common()),
            "scale_sources": dict(Counter(r["metric_scale"]["source"] for r in records if r["kept"])),
            "video_minutes": frames / settings.fps / 60.0,
            "wall_seconds_this_run": seconds,
        },
        "shards": [p.relative_to(out).as_posix() for p in shards],
        "broken": broken,
        "clips": records,
    }


def _report_lines(records: list[dict[str, Any]], broken: list[dict[str, str]]) -> str:
    lines = []
    for r in records:
        if r["kept"]:
            scale = r["metric_scale"]
            lines.append(
                f"KEEP {r['key']}: {r['num_frames']} frames, hfov {r['camera_qc']['hfov_deg']:.1f} deg, "
                f"registered {100 * r['camera_qc']['registered_fraction']:.0f} %, "
                f"scale {scale['median']:.4g} m/unit ({scale['source']})"
            )
        else:
            lines.append(f"DROP {r['key']}: {'; '.join(r['reasons'])}")
    for b in broken:
        lines.append(f"BROKEN {b['source']}{':' + b['member'] if b['member'] else ''}: {b['error']}")
    return "\n".join(lines) + "\n"
