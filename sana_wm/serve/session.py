"""One live session: its control state (keys, queued poses, stop), shared between the connection (event
loop) and the device's worker thread, and :func:`run_session`, the worker's loop over its chunks.

Per chunk the worker reads the key state when the chunk's camera is needed, i.e. just before the chunk is
sampled (``StreamSession.pose_source``), turns it into the chunk's poses
(:class:`~sana_wm.serve.controls.LiveCamera`), and sends every decoded frame as a JPEG with its pose, its
index and the ``keys_seq`` of the key state it was made from. A stop (``stop``, ``reset``, a closed tab) is
seen at the next chunk: the worker raises :class:`SessionStopped` instead of sampling it. While
``pause_when_idle`` is on and nothing moves, the worker waits for input instead of sampling.

Every frame sent is also written to the session's recording (an mp4 that grows, and at the end a sidecar
with the poses actually used, :func:`~sana_wm.utils.video_io.write_sidecar`).
"""

from __future__ import annotations

import base64
import gc
import io
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sana_wm.errors import InputError
from sana_wm.serve.controls import LiveCamera, pose_summary
from sana_wm.serve.protocol import LiveSettings, ServeLimits

log = logging.getLogger("sana_wm")


class SessionStopped(Exception):
    """Raised in the worker when the session was stopped before its next chunk."""


class LiveSession:
    """The control block of one session; the connection writes, the worker reads (under ``lock``).

    ``emit(message)`` sends a message to the client; it may block the worker while the client's outbox is
    full (a slow client slows its own generation, memory stays bounded) and returns False once the
    connection is gone.
    """

    def __init__(
        self,
        image: Image.Image | None,
        prompt: str,
        settings: LiveSettings,
        limits: ServeLimits,
        emit: Callable[[dict[str, Any]], bool],
    ) -> None:
        self.id = secrets.token_urlsafe(12)
        self.image, self.prompt, self.settings, self.limits = image, prompt, settings, limits
        self.emit = emit
        self.lock = threading.Condition()
        self.camera = LiveCamera(
            settings.mapping,
            translation_speed=settings.translation_speed,
            rotation_speed_deg=settings.rotation_speed_deg,
            max_queued=24 * limits.max_chunks,
        )
        self.letters: frozenset[str] = frozenset()
        self.keys_seq = 0
        self.stopped = False
        self.discarded = False
        self.last_input = time.monotonic()
        self.others_waiting: Callable[[], bool] = lambda: False
        self.recording: Path | None = None
        self.state = "queued"

    def set_keys(self, letters: frozenset[str], seq: int) -> None:
        with self.lock:
            self.letters, self.keys_seq = letters, max(seq, self.keys_seq)
            self.last_input = time.monotonic()
            self.lock.notify_all()

    def queue_poses(self, c2w_F44: np.ndarray) -> None:
        with self.lock:
            self.camera.queue_poses(c2w_F44)
            self.last_input = time.monotonic()
            self.lock.notify_all()

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            self.lock.notify_all()

    def next_poses(self, count: int) -> np.ndarray:
        """The worker's pose source: the poses of the chunk about to be sampled, from the input now."""
        with self.lock:
            if self.stopped:
                raise SessionStopped
            return self.camera.next_poses(count, self.letters, self.keys_seq)

    def wait_for_input(self) -> str:
        """Block while idle (paused); returns ``"input"``, ``"stopped"`` or ``"idle_timeout"``."""
        with self.lock:
            while not self.stopped:
                if self.letters or not self.camera.at_rest():
                    return "input"
                if self.others_waiting() and time.monotonic() - self.last_input > self.limits.idle_timeout_s:
                    return "idle_timeout"
                self.lock.wait(timeout=0.5)
            return "stopped"

    def idle(self) -> bool:
        with self.lock:
            return self.settings.pause_when_idle and not self.letters and self.camera.at_rest()


def encode_jpeg(frame_HW3: np.ndarray, quality: int) -> str:
    """One uint8 RGB frame → base64 JPEG text."""
    buffer = io.BytesIO()
    Image.fromarray(frame_HW3).save(buffer, format="JPEG", quality=quality)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class Publisher:
    """Draws the HUD, encodes the JPEGs, records and sends each chunk's frames on a thread of its own, in
    order, while the worker samples the next chunk. At most one chunk waits (bounded memory); a client that
    went away surfaces as :class:`SessionStopped` at the worker's next :meth:`publish`."""

    def __init__(self, session: LiveSession, writer: Any) -> None:
        self.session, self.writer = session, writer
        self.labels = _hud_labels(session.settings.mapping)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="sana-wm-publish")
        # HUD and JPEG per frame in parallel (PIL and NumPy release the GIL): a 704 x 1280 chunk's 24 frames
        # must be ready within one chunk time of a GPU.
        self.recorder = ThreadPoolExecutor(1, thread_name_prefix="sana-wm-record")
        self.recording: Future[None] | None = None
        self.encoders = ThreadPoolExecutor(min(4, os.cpu_count() or 1), thread_name_prefix="sana-wm-jpeg")
        self.pending: list[Future[Any]] = []
        self.queued = 0  # frames handed over (the pose index of the next chunk's first frame)
        self.written = 0  # frames recorded and sent

    def publish(self, frames_FHW3: np.ndarray, chunk: int) -> None:
        self._settle(keep=0)
        first, self.queued = self.queued, self.queued + len(frames_FHW3)
        self.pending.append(self.pool.submit(self._send_chunk, frames_FHW3, first, chunk))

    def post(self, message: dict[str, Any]) -> None:
        """A message after the frames published so far."""
        self.pending.append(self.pool.submit(self.session.emit, message))

    def close(self) -> None:
        try:
            self._settle(keep=0)
        finally:
            self.pool.shutdown(wait=True)
            self.encoders.shutdown(wait=True)
            self.recorder.shutdown(wait=True)  # every chunk handed over is in the mp4 before it is closed

    def _draw(self, frame_HW3: np.ndarray, control_row: np.ndarray) -> np.ndarray:
        from sana_wm.viz.overlay import draw_hud

        return draw_hud(frame_HW3, control_row, key_labels=self.labels)

    def _settle(self, keep: int) -> None:
        while len(self.pending) > keep:
            self.pending.pop(0).result()

    def _send_chunk(self, frames: np.ndarray, first: int, chunk: int) -> None:
        session, settings = self.session, self.session.settings
        count = len(frames)
        if not count:
            return
        with session.lock:
            c2w = np.stack(session.camera.c2w_F44[first : first + count])
            keys_seq = session.camera.keys_seq_F[first : first + count]
            hud = session.camera.hud_F6[first : first + count]
        if settings.hud:
            frames = np.stack(list(self.encoders.map(self._draw, frames, hud)))
        jpegs = self.encoders.map(encode_jpeg, frames, [settings.jpeg_quality] * count)
        for offset, jpeg in enumerate(jpegs):
            alive = session.emit(
                {
                    "type": "frame",
                    "index": first + offset,
                    "chunk": chunk,
                    "keys_seq": int(keys_seq[offset]),
                    "pose": pose_summary(c2w[offset]),
                    "c2w": np.round(c2w[offset], 6).tolist(),
                    "jpeg": jpeg,
                }
            )
            if not alive:
                raise SessionStopped
        # The recording (H.264, the slowest part at 704 x 1280) after the client has the frames, on a thread
        # of its own: one chunk may be encoding while the next is sent.
        if self.recording is not None:
            self.recording.result()
        self.recording = self.recorder.submit(self._record, frames)

    def _record(self, frames: np.ndarray) -> None:
        self.writer.write_chunk(frames)
        self.written += len(frames)


def run_session(engine: Any, session: LiveSession, workdir: Path) -> None:
    """Generate ``session`` on ``engine`` until it ends (worker thread). Never raises: failures become an
    ``error`` message (its text for bad input, a generic line for internal errors, logged here)."""
    from sana_wm.utils.video_io import StreamingVideoWriter

    settings = session.settings
    limits = session.limits
    chunks = settings.max_chunks or limits.max_chunks
    reason, stream = "max_length", None
    frames_sent = 0
    folder = Path(tempfile.mkdtemp(prefix=f"session-{session.id[:6]}-", dir=workdir))
    video = folder / "world.mp4"
    with session.lock:
        session.state = "starting"
    try:
        _, note = engine.intrinsics(session.image)
        if note:
            session.emit({"type": "notice", "message": note})
        stream, stream_settings, intrinsics_4 = engine.open_stream(
            session.image, session.prompt, settings, chunks, session.next_poses
        )
        session.emit(
            {
                "type": "started",
                "session": session.id,
                "height": stream_settings.height,
                "width": stream_settings.width,
                "fps": engine.defaults.fps,
                "chunks": chunks,
                "frames": stream.num_frames,
                "mapping": settings.mapping,
                "device": engine.device,
            }
        )
        begin = time.perf_counter()
        chunk_iter = iter(stream)
        recorder = StreamingVideoWriter(video, fps=engine.defaults.fps) if engine.record else _NoRecording()
        with recorder as writer:
            publisher = Publisher(session, writer)
            try:
                while True:
                    with session.lock:
                        session.state = "generating"
                    chunk_start = time.perf_counter()
                    try:
                        chunk = next(chunk_iter)
                    except StopIteration:
                        break
                    ready = time.perf_counter()
                    publisher.publish(chunk.frames, chunk.index)
                    publisher.post(
                        {
                            "type": "chunk",
                            "index": chunk.index,
                            "frames": len(chunk.frames),
                            "seconds": round(ready - chunk_start, 4),
                            "elapsed_s": round(ready - begin, 4),
                        }
                    )
                    if chunk.index + 1 >= len(stream.segments):
                        continue  # the decoder's flush comes next, whatever the keys
                    if session.idle():
                        publisher.post({"type": "state", "state": "paused"})
                        with session.lock:
                            session.state = "paused"
                        outcome = session.wait_for_input()
                        if outcome != "input":
                            reason = outcome
                            break
                        with session.lock:
                            if session.camera.at_rest():
                                session.camera.stop_moving()
                        publisher.post({"type": "state", "state": "generating"})
            finally:
                try:
                    publisher.close()
                finally:
                    frames_sent = publisher.written
        if frames_sent and engine.record:
            _write_sidecar(folder, session, stream_settings, intrinsics_4, frames_sent, engine)
            with session.lock:
                session.recording = folder
    except SessionStopped:
        reason = "stopped"
        if frames_sent and engine.record:
            _write_sidecar(folder, session, stream_settings, intrinsics_4, frames_sent, engine)
            with session.lock:
                session.recording = folder
    except InputError as err:
        reason = "error"
        session.emit({"type": "error", "code": "bad_input", "message": str(err)})
    except Exception:  # the worker must survive anything a session does; the log has the traceback
        log.exception("serve: session %s failed", session.id)
        reason = "error"
        session.emit(
            {"type": "error", "code": "internal", "message": "generation failed (see the server log)"}
        )
    finally:
        del stream
        gc.collect()
        _empty_device_cache(engine)
        with session.lock:
            session.state = "ended"
            if session.discarded:
                session.recording = None
            if session.recording is None:
                shutil.rmtree(folder, ignore_errors=True)
        session.emit(
            {
                "type": "ended",
                "reason": reason,
                "frames": frames_sent,
                "download": f"/api/recording/{session.id}.zip" if session.recording else None,
            }
        )


class _NoRecording:
    """Stands in for the session's video writer when the engine does not record."""

    def __enter__(self) -> _NoRecording:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write_chunk(self, frames: np.ndarray) -> None:
        return None


def _hud_labels(mapping: str) -> tuple[str, ...]:
    from sana_wm.viz.overlay import HUD_KEY_LABELS

    return HUD_KEY_LABELS[mapping]


def _write_sidecar(
    folder: Path,
    session: LiveSession,
    stream_settings: Any,
    intrinsics_4: np.ndarray,
    frames: int,
    engine: Any,
) -> None:
    import dataclasses

    from sana_wm.utils.video_io import write_sidecar

    with session.lock:
        c2w = np.stack(session.camera.c2w_F44[:frames])
        keys_seq = list(session.camera.keys_seq_F[:frames])
    write_sidecar(
        folder / "world.json",
        c2w=c2w,
        intrinsics=np.repeat(np.asarray(intrinsics_4, np.float32)[None], frames, axis=0),
        settings={
            "command": "serve",
            "video": "world.mp4",
            "image": "(uploaded)" if session.image is not None else "(the model's bundled first frame)",
            "prompt": session.prompt,
            "model": engine.kind,
            "device": engine.device,
            "live": dataclasses.asdict(session.settings),
            "stream": dataclasses.asdict(stream_settings),
            "fps": engine.defaults.fps,
            "action_mapping": session.settings.mapping,
            "action_overlay": session.settings.hud,
            "keys_seq": keys_seq,
            "intrinsics_convention": "pixels of the generated frames (after the resize + centre crop)",
        },
        seed=session.settings.seed,
    )


def _empty_device_cache(engine: Any) -> None:
    import torch

    if torch.cuda.is_available() and str(engine.device).startswith("cuda"):
        torch.cuda.empty_cache()
