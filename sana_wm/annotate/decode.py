"""Inputs of ``sana-wm annotate`` and their decoding at the training frame rate with the official crop.

Inputs (:func:`list_sources`): a video file; a folder of videos (non-recursive, sorted); a list file
(``.txt``/``.lst``: one path per line, ``#`` comments, paths relative to the list); or a dataset folder in
the official layout (``raw/*.zip`` with ``<key>.mp4`` members, e.g. from ``sana-wm worlds render``), whose
``_camera.npz`` poses and intrinsics are ground truth (metric scale source ``gt``) and whose captions
are kept.

Decoding (:func:`decode_frames`): PyAV decodes every frame; output frame ``k`` is the source frame nearest
in presentation time to ``t_0 + k / fps`` (so 24, 25, 30, 60 fps or variable-rate sources all land on
16 fps; a 16 fps source is passed through frame for frame). Each output frame is resized (LANCZOS, aspect
kept) to cover ``height`` x ``width`` and centre-cropped: :func:`sana_wm.utils.image.crop_info`, the
official policy. Frames come with their source frame index.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sana_wm.errors import InputError
from sana_wm.utils.image import crop_info

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")
LIST_EXTENSIONS = (".txt", ".lst", ".list")


@dataclass(frozen=True)
class Source:
    """One input video. ``member``: the mp4 inside a dataset zip; ``gt_*``: ground-truth cameras (metric
    c2w, intrinsics in pixels of ``gt_size`` = (height, width)) when the input provides them."""

    name: str
    path: Path
    member: str | None = None
    prompt: str | None = None
    gt_c2w_F44: np.ndarray | None = None
    gt_intrinsics_F4: np.ndarray | None = None
    gt_size: tuple[int, int] | None = None
    info: dict[str, Any] = field(default_factory=dict)


def stem_of(text: str) -> str:
    """A clip-key-safe name: letters, digits, ``-`` and ``_`` (others become ``_``)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "video"


def list_sources(path: str | os.PathLike[str]) -> list[Source]:
    """The videos of an ``INPUT`` argument (see the module docstring); :class:`InputError` when there are
    none or the path does not exist. Videos are not opened here."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"INPUT: {path} does not exist")
    if path.is_dir() and (path / "raw").is_dir() and any((path / "raw").glob("*.zip")):
        return _dataset_sources(path / "raw")
    if path.is_dir():
        videos = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        if not videos:
            raise InputError(f"INPUT: {path} holds no videos ({', '.join(VIDEO_EXTENSIONS)})")
        return _unique([Source(stem_of(p.stem), p) for p in videos])
    if path.suffix.lower() in LIST_EXTENSIONS:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        entries = [ln for ln in lines if ln and not ln.startswith("#")]
        if not entries:
            raise InputError(f"INPUT: list file {path} names no videos")
        paths = [p if p.is_absolute() else path.parent / p for p in map(Path, entries)]
        return _unique([Source(stem_of(p.stem), p) for p in paths])
    return [Source(stem_of(path.stem), path)]


def _unique(sources: list[Source]) -> list[Source]:
    seen: dict[str, int] = {}
    out = []
    for source in sources:
        count = seen.get(source.name, 0)
        seen[source.name] = count + 1
        name = source.name if count == 0 else f"{source.name}-{count}"
        out.append(Source(name, source.path))
    return out


def _dataset_sources(raw_dir: Path) -> list[Source]:
    from sana_wm.data.layout import CameraTable, shard_paths

    sources = []
    for raw_zip in sorted(raw_dir.glob("*.zip")):
        table = CameraTable.load(shard_paths(raw_zip)[0])
        with zipfile.ZipFile(raw_zip) as archive:
            names = set(archive.namelist())
            for name in sorted(n for n in names if n.endswith(".mp4")):
                key = name[: -len(".mp4")]
                info = json.loads(archive.read(f"{key}.json")) if f"{key}.json" in names else {}
                camera = table.get(key) if table is not None else None
                size = (int(info["height"]), int(info["width"])) if "height" in info else None
                sources.append(
                    Source(
                        stem_of(key),
                        raw_zip,
                        member=name,
                        prompt=info.get("prompt"),
                        gt_c2w_F44=None if camera is None or size is None else camera[0].astype(np.float64),
                        gt_intrinsics_F4=None
                        if camera is None or size is None
                        else camera[1].astype(np.float64),
                        gt_size=size,
                        info=info,
                    )
                )
    if not sources:
        raise InputError(f"INPUT: {raw_dir} holds no clips (<key>.mp4 in *.zip)")
    return sources


class _Opened:
    """The source as a local file (a zip member is extracted to a temporary folder)."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> Path:
        if self.source.member is None:
            return self.source.path
        self._tmp = tempfile.TemporaryDirectory(prefix="sana_wm_annotate_")
        with zipfile.ZipFile(self.source.path) as archive:
            return Path(archive.extract(self.source.member, self._tmp.name))

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def decode_frames(
    source: Source, *, fps: float, height: int, width: int
) -> Iterator[tuple[int, float, np.ndarray]]:
    """``(source frame index, source time in s, RGB uint8 (height, width, 3))`` at ``fps`` (see module
    docstring). Raises :class:`InputError` for a file PyAV cannot open or decode."""
    import av

    with _Opened(source) as path:
        try:
            container = av.open(str(path))
        except (av.error.FFmpegError, OSError) as err:
            raise InputError(f"{source.path}: cannot open as a video ({err})") from err
        try:
            if not container.streams.video:
                raise InputError(f"{source.path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            yield from _resample(_decoded(container, stream, source), fps, height, width)
        except av.error.FFmpegError as err:
            raise InputError(f"{source.path}: decoding failed ({err})") from err
        finally:
            container.close()


def _decoded(container: Any, stream: Any, source: Source) -> Iterator[tuple[int, float, Any]]:
    rate = float(stream.average_rate or stream.guessed_rate or 16.0)
    for index, frame in enumerate(container.decode(stream)):
        time = float(frame.time) if frame.time is not None else index / rate
        yield index, time, frame


def _resample(
    frames: Iterator[tuple[int, float, Any]], fps: float, height: int, width: int
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Nearest-in-time resampling with one frame of look-ahead, then the crop."""
    previous = None
    start = None
    k = 0
    for index, time, frame in frames:
        if previous is None:
            previous, start = (index, time, frame), time
            continue
        boundary = (previous[1] + time) / 2.0
        while start + k / fps < boundary:
            yield previous[0], previous[1], _crop(previous[2], height, width)
            k += 1
        previous = (index, time, frame)
    if previous is not None:
        yield previous[0], previous[1], _crop(previous[2], height, width)


def _crop(frame: Any, height: int, width: int) -> np.ndarray:
    crop = crop_info((frame.height, frame.width), height, width)
    if (crop.resized_height, crop.resized_width) == (frame.height, frame.width):
        rgb = frame.to_ndarray(format="rgb24")
    else:
        rgb = frame.reformat(
            width=crop.resized_width, height=crop.resized_height, format="rgb24", interpolation="LANCZOS"
        ).to_ndarray()
    return np.ascontiguousarray(rgb[crop.top : crop.top + height, crop.left : crop.left + width])
