from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from sana_wm.errors import InputError
from sana_wm.utils.video_io import StreamingVideoWriter, read_video

H, W = 64, 96
REPO = Path(__file__).resolve().parents[2]


def _frames(start: int, count: int) -> np.ndarray:
    """Smooth RGB ramps drifting with the frame index (H.264 at crf 18 keeps them within a few levels)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = []
    for i in range(start, start + count):
        b = 127.5 + 100 * np.sin((xx + yy) / 20 + i / 3)
        out.append(np.stack([255 * xx / (W - 1), 255 * yy / (H - 1), b], axis=-1).round().astype(np.uint8))
    return np.stack(out)


def _decode_growing(path: Path) -> tuple[np.ndarray, list[bool]]:
    """Every frame a reader gets from the file as it is now, and which of them are keyframes."""
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
    return np.stack([f.to_ndarray(format="rgb24") for f in decoded]), [f.key_frame for f in decoded]


def _mean_abs_error(got: np.ndarray, start: int = 0) -> float:
    return float(np.abs(got.astype(np.int16) - _frames(start, len(got)).astype(np.int16)).mean())


def _boxes(path: Path) -> list[str]:
    data, boxes, offset = path.read_bytes(), [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        boxes.append(kind.decode("ascii"))
        offset += size or len(data)
    return boxes


def test_the_file_grows_and_decodes_after_every_chunk(tmp_path: Path) -> None:
    out = tmp_path / "live.mp4"
    with StreamingVideoWriter(out, fps=16) as writer:
        for chunk in range(3):
            writer.write_chunk(_frames(24 * chunk, 24))
            written = 24 * (chunk + 1)
            got, _ = _decode_growing(out)  # the writer is still open
            assert written - 1 <= len(got) <= written  # all but the frame still in the muxer
            assert _mean_abs_error(got) < 3
    got, keys = _decode_growing(out)
    assert len(got) == 72 and _mean_abs_error(got) < 3
    key_indices = [i for i, key in enumerate(keys) if key] + [len(keys)]
    assert key_indices[0] == 0 and max(np.diff(key_indices)) <= 16  # a keyframe at least every second
    frames, fps = read_video(out)
    assert fps == 16 and np.array_equal(frames, got)
    boxes = _boxes(out)
    assert boxes[:2] == ["ftyp", "moov"] and boxes.count("moof") == 72  # header first, a fragment a frame


def test_a_killed_writer_leaves_the_written_frames(tmp_path: Path) -> None:
    out = tmp_path / "killed.mp4"
    script = (
        "import os, sys\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from test_streaming_video_writer import _frames\n"
        "from sana_wm.utils.video_io import StreamingVideoWriter\n"
        "writer = StreamingVideoWriter(sys.argv[1], fps=16).__enter__()\n"
        "writer.write_chunk(_frames(0, 24))\n"
        "writer.write_chunk(_frames(24, 24))\n"
        "os._exit(1)  # no close, no trailer, no Python clean-up\n"
    )
    run = subprocess.run([sys.executable, "-c", script, str(out), str(Path(__file__).parent)], cwd=REPO)
    assert run.returncode == 1
    got, _ = _decode_growing(out)
    assert len(got) >= 47 and _mean_abs_error(got) < 3
    assert len(read_video(out)[0]) == len(got)


def test_an_exception_mid_write_finishes_the_file_with_what_was_written(tmp_path: Path) -> None:
    out = tmp_path / "broken.mp4"
    with pytest.raises(KeyError), StreamingVideoWriter(out, fps=16) as writer:
        writer.write_chunk(_frames(0, 24))
        writer.write_many(_frames(24, 6))
        raise KeyError("the decoder failed")
    got, _ = _decode_growing(out)
    assert len(got) == 30 and _mean_abs_error(got) < 3
    assert "mfra" in _boxes(out)  # finished properly: the trailer is there


def test_existing_files_are_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "taken.mp4"
    out.write_bytes(b"keep me")
    with pytest.raises(InputError, match="already exists"), StreamingVideoWriter(out):
        pass
    with pytest.raises(RuntimeError), StreamingVideoWriter(out, overwrite=True):
        raise RuntimeError("failed before the first frame")
    assert out.read_bytes() == b"keep me"  # replaced only when a frame arrives
    with StreamingVideoWriter(out, overwrite=True) as writer:
        writer.write_chunk(_frames(0, 8))
    assert len(_decode_growing(out)[0]) == 8


def test_no_frames_and_bad_use(tmp_path: Path) -> None:
    out = tmp_path / "empty.mp4"
    with pytest.raises(InputError, match="no video frames"), StreamingVideoWriter(out):
        pass
    assert not out.exists()
    with pytest.raises(ValueError), StreamingVideoWriter(out) as writer:
        writer.write(np.zeros((H, W, 3), dtype=np.uint8))
        writer.write(np.zeros((H + 2, W, 3), dtype=np.uint8))  # size change: InputError
    assert len(_decode_growing(out)[0]) == 1
    with pytest.raises(RuntimeError, match="with"):
        StreamingVideoWriter(tmp_path / "x.mp4").write(np.zeros((H, W, 3), dtype=np.uint8))
    with pytest.raises(InputError, match="keyframe_interval"):
        StreamingVideoWriter(out, keyframe_interval=0)
