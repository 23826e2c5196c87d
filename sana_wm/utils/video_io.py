"""MP4 writing and reading with PyAV, plus the JSON sidecar that records how a video was made.

Video files are H.264 (libx264), yuv420p, BT.709 limited range (tagged in the stream so players and
:func:`read_video` convert back with the same matrix), with the ``moov`` atom at the front so the file
starts playing before it has fully downloaded. Frames are RGB ``uint8`` arrays laid out ``(H, W, 3)``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from sana_wm.errors import InputError
from sana_wm.utils.atomic import atomic_output

# ITU-T H.273 code point shared by BT.709 primaries, transfer and matrix; ints work on every PyAV version.
_BT709 = 1
_LIMITED_RANGE = 1


def _av() -> Any:
    """The PyAV module, imported on first use (slow to import; commands that write no video skip it)."""
    import av

    return av


ENCODER_THREADS = 4


class VideoWriter:
    """Stream RGB frames into an H.264 MP4 one frame at a time (memory does not grow with length).

    Use as a context manager::

        with VideoWriter("out.mp4", fps=16) as writer:
            for frame_HW3 in frames:
                writer.write(frame_HW3)

    The file is encoded under a temporary name beside ``path`` and renamed to ``path`` only when the
    ``with`` block finishes without an exception; on an exception (or if no frame was written) the
    temporary file is deleted and ``path`` is left untouched.

    Frames must be ``uint8`` arrays of shape ``(H, W, 3)``, all the same size as the first one. H and W
    must be even because yuv420p stores chroma at half resolution; an odd size raises
    :class:`InputError` rather than silently padding, so the output always has exactly the input size.

    Args:
        path: output ``.mp4`` path; parent folders are created.
        fps: frames per second (a positive number; fractional rates are kept exactly up to 1/1000).
        crf: x264 constant rate factor, 0 (lossless) to 51; 18 is visually near-lossless.
        preset: x264 speed preset (``ultrafast`` ... ``veryslow``).
    """

    def __init__(
        self, path: str | os.PathLike[str], fps: float = 16, crf: int = 18, preset: str = "veryfast"
    ) -> None:
        if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
            raise InputError(f"fps: must be a positive number, got {fps!r}")
        if not (isinstance(crf, int) and 0 <= crf <= 51):
            raise InputError(f"crf: must be an integer from 0 to 51, got {crf!r}")
        self.path = Path(path)
        self.fps = fps
        self.crf = crf
        self.preset = preset
        self.frames_written = 0
        self._atomic: contextlib.AbstractContextManager[Path] | None = None
        self._tmp: Path | None = None
        self._container: Any = None
        self._stream: Any = None

    def __enter__(self) -> VideoWriter:
        if self._atomic is not None:
            raise RuntimeError("VideoWriter: already open")
        self._atomic = atomic_output(self.path)
        self._tmp = self._atomic.__enter__()
        self.frames_written, self._container, self._stream = 0, None, None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort(exc, tb)

    def write(self, frame_HW3: np.ndarray) -> None:
        """Encode one RGB frame, ``uint8`` ``(H, W, 3)``."""
        if not self._in_with_block():
            raise RuntimeError(f"{type(self).__name__}: use it in a 'with' block before writing")
        frame_HW3 = self._check_frame(frame_HW3)
        if self._container is None:
            self._open(height=frame_HW3.shape[0], width=frame_HW3.shape[1])
        rgb = _av().VideoFrame.from_ndarray(frame_HW3, format="rgb24")
        # Convert with the BT.709 matrix ourselves: swscale's default is BT.601, which players would
        # then decode as BT.709 for HD sizes and shift the colours.
        yuv = rgb.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
        yuv.pts = self.frames_written
        for packet in self._stream.encode(yuv):
            self._container.mux(packet)
        self.frames_written += 1

    def write_many(self, frames: Iterable[np.ndarray]) -> None:
        """Encode every frame of ``frames`` in order (consumed lazily, one at a time)."""
        for frame_HW3 in frames:
            self.write(frame_HW3)

    def close(self) -> None:
        """Flush the encoder, finish the file and move it to ``path``."""
        if self._atomic is None:
            return
        if self.frames_written == 0:
            self._abort(None, None)
            raise InputError(f"{self.path}: no video frames were written")
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
        except BaseException as err:
            self._abort(err, err.__traceback__)
            raise
        atomic, self._atomic = self._atomic, None
        atomic.__exit__(None, None, None)

    def _abort(self, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        atomic, self._atomic = self._atomic, None
        if atomic is not None:
            # Handing an exception to atomic_output makes it delete the temporary file instead of renaming.
            err = exc if exc is not None else RuntimeError("VideoWriter aborted")
            with contextlib.suppress(BaseException):
                atomic.__exit__(type(err), err, tb)

    def _in_with_block(self) -> bool:
        return self._atomic is not None

    def _check_frame(self, frame_HW3: np.ndarray) -> np.ndarray:
        frame_HW3 = np.asarray(frame_HW3)
        index = self.frames_written
        if frame_HW3.dtype != np.uint8:
            raise InputError(f"video frame {index}: dtype must be uint8, got {frame_HW3.dtype}")
        if frame_HW3.ndim != 3 or frame_HW3.shape[2] != 3:
            raise InputError(f"video frame {index}: shape must be (H, W, 3), got {frame_HW3.shape}")
        height, width = frame_HW3.shape[:2]
        if self._stream is not None:
            if (height, width) != (self._stream.height, self._stream.width):
                raise InputError(
                    f"video frame {index}: size {height}x{width} differs from the first frame "
                    f"{self._stream.height}x{self._stream.width}"
                )
        elif height % 2 or width % 2 or height == 0 or width == 0:
            raise InputError(
                f"video frame {index}: size {height}x{width} must be even and non-zero (H.264 yuv420p)"
            )
        return np.ascontiguousarray(frame_HW3)

    def _create_container(self) -> Any:
        return _av().open(str(self._tmp), "w", format="mp4", container_options={"movflags": "+faststart"})

    def _stream_options(self) -> dict[str, str]:
        # A fixed encoder thread count: x264's default follows the CPUs this process may run on, and its
        # output depends on the thread count, so the same frames gave different files on different
        # machines or under another CPU affinity (up to 14/255 apart).
        return {"crf": str(self.crf), "preset": self.preset, "threads": str(ENCODER_THREADS)}

    def _open(self, *, height: int, width: int) -> None:
        container = self._create_container()
        try:
            stream = container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1000))
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = self._stream_options()
            codec = stream.codec_context
            codec.colorspace = codec.color_primaries = codec.color_trc = _BT709
            codec.color_range = _LIMITED_RANGE
        except BaseException:
            container.close()
            raise
        self._container, self._stream = container, stream


class StreamingVideoWriter(VideoWriter):
    """An H.264 MP4 written straight to ``path`` that is valid and playable at every moment while it grows.

    Use as a context manager, one :meth:`write_chunk` per decoded chunk::

        with StreamingVideoWriter("live.mp4", fps=16) as writer:
            for frames_FHW3 in chunks:
                writer.write_chunk(frames_FHW3)

    The file is a fragmented MP4 (``movflags=frag_every_frame+empty_moov+default_base_moof``): an empty
    ``moov`` header, then one ``moof``/``mdat`` fragment per frame, each handed to the OS as soon as the
    next frame arrives (``flush_packets``). A player or another process can open the file at any time and
    play every complete fragment; :meth:`write_chunk` also ``fsync``s, so the frames survive a power loss.
    With ``low_latency`` (x264 ``tune=zerolatency``: no B-frames, no lookahead) every frame but the last
    one written is on disk after each :meth:`write_chunk`; without it x264 holds back up to ~20 frames for
    a smaller file. Keyframes come every ``keyframe_interval`` frames (default: one second), so a viewer
    can seek.

    Failure modes, unlike :class:`VideoWriter` (which never leaves a partial file):

    - an exception inside the ``with`` block (including ``KeyboardInterrupt``) finishes the file with the
      frames written so far and propagates; if even that fails, the fragments already on disk remain and
      play (the valid prefix);
    - a killed process (``SIGKILL``, ``os._exit``) leaves every frame up to the last fragment written;
    - a writer that wrote no frame leaves no file; ``close()`` then raises like :class:`VideoWriter`.

    ``path`` must not exist unless ``overwrite`` is true (checked on entering the ``with`` block, and the
    file is created exclusively when the first frame arrives); ``overwrite`` replaces it only then, so an
    existing file survives a writer that fails before its first frame.

    Args:
        path, fps, crf, preset: as for :class:`VideoWriter`.
        keyframe_interval: frames between keyframes; default ``round(fps)`` (at least 1).
        low_latency: encode with ``tune=zerolatency`` (see above).
        overwrite: replace an existing file at ``path``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float = 16,
        crf: int = 18,
        preset: str = "veryfast",
        *,
        keyframe_interval: int | None = None,
        low_latency: bool = True,
        overwrite: bool = False,
    ) -> None:
        super().__init__(path, fps=fps, crf=crf, preset=preset)
        if keyframe_interval is None:
            keyframe_interval = max(1, round(fps))
        if not (isinstance(keyframe_interval, int) and keyframe_interval >= 1):
            raise InputError(f"keyframe_interval: must be an integer >= 1, got {keyframe_interval!r}")
        self.keyframe_interval = keyframe_interval
        self.low_latency = low_latency
        self.overwrite = overwrite
        self._entered = False
        self._file: Any = None

    def __enter__(self) -> StreamingVideoWriter:
        if self._entered:
            raise RuntimeError("StreamingVideoWriter: already open")
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a folder")
        if self.path.exists() and not self.overwrite:
            raise InputError(f"{self.path}: already exists (pass overwrite=True to replace it)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._entered, self.frames_written, self._container, self._stream = True, 0, None, None
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        elif self._entered:
            with contextlib.suppress(Exception):
                self._finish()  # keep the frames written so far as a complete file
            self._release()

    def write_chunk(self, frames_FHW3: Iterable[np.ndarray]) -> None:
        """Encode the frames of one chunk (``(F, H, W, 3)`` uint8, or any iterable of ``(H, W, 3)`` frames),
        then :meth:`flush`."""
        self.write_many(frames_FHW3)
        self.flush()

    def flush(self) -> None:
        """Make everything muxed so far durable (``fsync``); it is visible to readers already."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush the encoder and finish the file (it stays valid if this fails half-way)."""
        if not self._entered:
            return
        if self.frames_written == 0:
            self._release()
            raise InputError(f"{self.path}: no video frames were written")
        try:
            self._finish()
        finally:
            self._release()

    def _finish(self) -> None:
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
        self.flush()

    def _release(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        if self._file is not None:
            self._file.close()
            self._file = None
            if self.frames_written == 0:  # created, but not one frame made it: nothing worth keeping
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
        self._entered = False

    def _in_with_block(self) -> bool:
        return self._entered

    def _create_container(self) -> Any:
        # An unbuffered file object, so each fragment reaches the OS as soon as FFmpeg flushes it; "xb"
        # creates the file only if it does not exist (another writer may have made it since __enter__).
        try:
            self._file = open(self.path, "wb" if self.overwrite else "xb", buffering=0)  # noqa: SIM115
        except FileExistsError:
            raise InputError(f"{self.path}: already exists (pass overwrite=True to replace it)") from None
        flags = "+frag_every_frame+empty_moov+default_base_moof"
        return _av().open(
            self._file, "w", format="mp4", container_options={"movflags": flags, "flush_packets": "1"}
        )

    def _stream_options(self) -> dict[str, str]:
        options = {**super()._stream_options(), "g": str(self.keyframe_interval)}
        if self.low_latency:
            options["tune"] = "zerolatency"
        return options


def read_video(path: str | os.PathLike[str]) -> tuple[np.ndarray, float]:
    """Decode a whole video into memory.

    Returns:
        ``(frames_FHW3, fps)``: RGB ``uint8`` frames ``(F, H, W, 3)`` and the average frame rate.
    """
    with _open_for_reading(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    if not frames:
        raise InputError(f"{path}: the video has no frames")
    return np.stack(frames), fps


def probe_video(path: str | os.PathLike[str]) -> dict[str, int | float]:
    """Frame count, size and frame rate without decoding pixels.

    Returns:
        ``{"frames": int, "height": int, "width": int, "fps": float}``. The count comes from the
        container header when present, else from counting packets.
    """
    with _open_for_reading(path) as container:
        stream = container.streams.video[0]
        frames = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
        return {
            "frames": int(frames),
            "height": int(stream.codec_context.height),
            "width": int(stream.codec_context.width),
            "fps": float(stream.average_rate or stream.guessed_rate or 0.0),
        }


@contextlib.contextmanager
def _open_for_reading(path: str | os.PathLike[str]) -> Iterator[Any]:
    if not Path(path).is_file():
        raise InputError(f"{path}: video file not found")
    av = _av()
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise InputError(f"{path}: cannot open as a video ({err})") from err
    try:
        if not container.streams.video:
            raise InputError(f"{path}: the file has no video stream")
        yield container
    finally:
        container.close()


@dataclass(frozen=True)
class Sidecar:
    """Contents of a generation sidecar.

    Attributes:
        c2w: ``(F, 4, 4)`` float32 camera-to-world poses, OpenCV axes, metres.
        intrinsics: ``(F, 4)`` float32 ``[fx, fy, cx, cy]`` in pixels.
        settings: the generation settings, as plain JSON values.
        seed: the random seed, or ``None``.
    """

    c2w: np.ndarray
    intrinsics: np.ndarray
    settings: dict[str, Any]
    seed: int | None


_SIDECAR_FORMAT = "sana-wm-sidecar"
_SIDECAR_VERSION = 1


def write_sidecar(
    path: str | os.PathLike[str],
    *,
    c2w: np.ndarray,
    intrinsics: np.ndarray,
    settings: dict[str, Any],
    seed: int | None,
) -> None:
    """Write the trajectory, intrinsics, settings and seed of one video as UTF-8 JSON, atomically.

    ``c2w`` is ``(F, 4, 4)`` and ``intrinsics`` ``(F, 4)``; both are stored as float32 in their shortest
    exact decimal form, one frame per line, so :func:`read_sidecar` returns bit-identical arrays.
    NumPy scalars and arrays, tuples and paths inside ``settings`` are converted to JSON values.
    """
    c2w_F44 = np.asarray(c2w, dtype=np.float32)
    intrinsics_F4 = np.asarray(intrinsics, dtype=np.float32)
    if c2w_F44.ndim != 3 or c2w_F44.shape[1:] != (4, 4):
        raise InputError(f"c2w: shape must be (F, 4, 4), got {c2w_F44.shape}")
    if intrinsics_F4.shape != (c2w_F44.shape[0], 4):
        raise InputError(f"intrinsics: shape must be ({c2w_F44.shape[0]}, 4), got {intrinsics_F4.shape}")
    if not (np.isfinite(c2w_F44).all() and np.isfinite(intrinsics_F4).all()):
        raise InputError("c2w/intrinsics: values must be finite (no NaN or inf)")
    document = {
        "format": _SIDECAR_FORMAT,
        "version": _SIDECAR_VERSION,
        "convention": "c2w: camera-to-world, OpenCV axes (+X right, +Y down, +Z forward), metres; "
        "intrinsics: [fx, fy, cx, cy] in pixels",
        "num_frames": int(c2w_F44.shape[0]),
        "seed": None if seed is None else int(seed),
        "settings": _jsonable(settings, "settings"),
        "c2w": _jsonable(c2w_F44, "c2w"),
        "intrinsics": _jsonable(intrinsics_F4, "intrinsics"),
    }
    text = _dumps(document, 0) + "\n"
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def read_sidecar(path: str | os.PathLike[str]) -> Sidecar:
    """Read a file written by :func:`write_sidecar`."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read sidecar JSON ({err})") from err
    if not isinstance(document, dict) or document.get("format") != _SIDECAR_FORMAT:
        raise InputError(f"{path}: not a sana-wm sidecar (missing format '{_SIDECAR_FORMAT}')")
    c2w_F44 = np.asarray(document["c2w"], dtype=np.float32).reshape(-1, 4, 4)
    intrinsics_F4 = np.asarray(document["intrinsics"], dtype=np.float32).reshape(-1, 4)
    return Sidecar(
        c2w=c2w_F44, intrinsics=intrinsics_F4, settings=document["settings"], seed=document["seed"]
    )


def _jsonable(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        if value.dtype == np.float32:
            # float32 -> shortest decimal that parses back to the same float32 (0.05, not 0.0500000007).
            shortest = [float(str(x)) for x in value.ravel()]
            return np.array(shortest, dtype=object).reshape(value.shape).tolist()
        return value.tolist()
    if isinstance(value, np.float32):
        return float(str(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, str | bool | int | float):
        return value
    raise InputError(f"{where}: cannot store a {type(value).__name__} in the JSON sidecar")


def _dumps(value: Any, level: int) -> str:
    """Pretty JSON that keeps short number lists and matrices (one pose per line) on a single line."""
    compact = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), allow_nan=False)
    if isinstance(value, dict) and value:
        pad = "  " * (level + 1)
        items = [
            f"{pad}{json.dumps(k, ensure_ascii=False)}: {_dumps(v, level + 1)}" for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    if isinstance(value, list) and value and not _inline(value, compact):
        pad = "  " * (level + 1)
        return "[\n" + ",\n".join(pad + _dumps(v, level + 1) for v in value) + "\n" + "  " * level + "]"
    return compact


def _inline(items: list[Any], compact: str) -> bool:
    def scalar(x: Any) -> bool:
        return x is None or isinstance(x, str | bool | int | float)

    if all(scalar(x) for x in items):
        return True
    return len(compact) <= 300 and all(isinstance(x, list) and all(scalar(y) for y in x) for x in items)
