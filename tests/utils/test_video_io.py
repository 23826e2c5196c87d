from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import av
import numpy as np
import pytest

from sana_wm.errors import InputError
from sana_wm.utils.video_io import VideoWriter, probe_video, read_sidecar, read_video, write_sidecar

H, W = 64, 96


def _gradient_frame(i: int) -> np.ndarray:
    """Smooth RGB ramps that drift with i; H.264 at crf 18 keeps these within a few grey levels."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    r = 255 * xx / (W - 1)
    g = 255 * yy / (H - 1)
    b = 127.5 + 100 * np.sin((xx + yy) / 20 + i / 3)
    return np.stack([r, g, b], axis=-1).round().astype(np.uint8)


def _top_level_boxes(path: Path) -> list[str]:
    data, boxes, offset = path.read_bytes(), [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append(kind.decode("ascii"))
        offset += size if size else len(data)
    return boxes


def test_round_trip_matches_pixels_count_size_and_fps(tmp_path: Path) -> None:
    frames = np.stack([_gradient_frame(i) for i in range(20)])
    out = tmp_path / "clip.mp4"
    with VideoWriter(out, fps=16) as writer:
        writer.write_many(iter(frames))
    decoded, fps = read_video(out)
    assert decoded.shape == (20, H, W, 3)
    assert decoded.dtype == np.uint8
    assert fps == 16.0
    assert np.abs(decoded.astype(np.int16) - frames).mean() < 3.0
    assert probe_video(out) == {"frames": 20, "height": H, "width": W, "fps": 16.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_fractional_fps_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    with VideoWriter(out, fps=12.5) as writer:
        writer.write_many(_gradient_frame(i) for i in range(5))
    assert probe_video(out)["fps"] == 12.5


def test_saturated_colours_survive_bt709_round_trip(tmp_path: Path) -> None:
    # A BT.601/BT.709 mismatch between writer and reader turns pure red 255 into about 232.
    frame = np.zeros((H, W, 3), np.uint8)
    frame[:, :32] = (255, 0, 0)
    frame[:, 32:64] = (0, 255, 0)
    frame[:, 64:] = (0, 0, 255)
    out = tmp_path / "rgb.mp4"
    with VideoWriter(out) as writer:
        writer.write_many([frame] * 3)
    decoded, _ = read_video(out)
    for col, colour in ((16, (255, 0, 0)), (48, (0, 255, 0)), (80, (0, 0, 255))):
        assert np.abs(decoded[:, 32, col].astype(int) - colour).max() <= 4
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.colorspace == 1  # BT.709


def test_moov_atom_precedes_media_data(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    with VideoWriter(out) as writer:
        writer.write_many(_gradient_frame(i) for i in range(4))
    boxes = _top_level_boxes(out)
    assert boxes.index("moov") < boxes.index("mdat")


def test_exception_mid_write_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(out) as writer:
        for i in range(6):
            writer.write(_gradient_frame(i))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file(tmp_path: Path) -> None:
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"old")
    with pytest.raises(InputError, match="differs from the first frame"), VideoWriter(out) as writer:
        writer.write(_gradient_frame(0))
        writer.write(np.zeros((H + 2, W, 3), np.uint8))
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros((H, W, 3), np.float32), "dtype must be uint8"),
        (np.zeros((H, W), np.uint8), r"shape must be \(H, W, 3\)"),
        (np.zeros((H, W, 4), np.uint8), r"shape must be \(H, W, 3\)"),
        (np.zeros((H, W + 1, 3), np.uint8), "must be even"),
        (np.zeros((H - 1, W, 3), np.uint8), "must be even"),
    ],
)
def test_bad_frames_raise_and_leave_no_file(tmp_path: Path, frame: np.ndarray, message: str) -> None:
    with pytest.raises(InputError, match=message), VideoWriter(tmp_path / "clip.mp4") as writer:
        writer.write(frame)
    assert list(tmp_path.iterdir()) == []


def test_no_frames_is_an_error_and_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no video frames"), VideoWriter(tmp_path / "clip.mp4"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_write_outside_with_block_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="with"):
        VideoWriter(tmp_path / "clip.mp4").write(_gradient_frame(0))


def test_sidecar_round_trip_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    c2w = rng.normal(size=(7, 4, 4)).astype(np.float32)
    c2w[:, 3] = (0, 0, 0, 1)
    c2w[0, 0, 0] = 0.05
    intrinsics = rng.uniform(100, 900, size=(7, 4)).astype(np.float32)
    settings = {
        "action": "w-10,jw-5",
        "steps": np.int64(60),
        "cfg_scale": np.float32(5.0),
        "flow_shift": 9.8,
        "size": (704, 1280),
        "refiner": True,
        "weights": tmp_path / "w.safetensors",
        "sigmas": np.array([1.0, 0.5], dtype=np.float64),
        "prompt": "a café at dusk",
    }
    out = tmp_path / "clip.json"
    write_sidecar(out, c2w=c2w, intrinsics=intrinsics, settings=settings, seed=np.int64(42))
    loaded = read_sidecar(out)
    assert loaded.c2w.dtype == np.float32 and loaded.intrinsics.dtype == np.float32
    np.testing.assert_array_equal(loaded.c2w, c2w)
    np.testing.assert_array_equal(loaded.intrinsics, intrinsics)
    assert loaded.seed == 42
    assert loaded.settings == {
        "action": "w-10,jw-5",
        "steps": 60,
        "cfg_scale": 5.0,
        "flow_shift": 9.8,
        "size": [704, 1280],
        "refiner": True,
        "weights": str(tmp_path / "w.safetensors"),
        "sigmas": [1.0, 0.5],
        "prompt": "a café at dusk",
    }
    text = out.read_text(encoding="utf-8")
    assert json.loads(text)["num_frames"] == 7
    assert "café" in text  # UTF-8, not \u escapes
    assert "[[0.05, " in text  # float32 written in its shortest exact form
    assert sum(line.strip().startswith("[[") for line in text.splitlines()) == 7  # one pose per line


def test_sidecar_rejects_mismatched_intrinsics_and_unknown_types(tmp_path: Path) -> None:
    c2w = np.repeat(np.eye(4, dtype=np.float32)[None], 3, axis=0)
    with pytest.raises(InputError, match=r"intrinsics: shape must be \(3, 4\)"):
        write_sidecar(tmp_path / "a.json", c2w=c2w, intrinsics=np.ones((2, 4)), settings={}, seed=0)
    with pytest.raises(InputError, match="settings.bad"):
        write_sidecar(
            tmp_path / "a.json", c2w=c2w, intrinsics=np.ones((3, 4)), settings={"bad": object()}, seed=0
        )
    assert list(tmp_path.iterdir()) == []


def test_reading_a_missing_or_non_video_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="video file not found"):
        read_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(InputError, match="cannot open as a video"):
        probe_video(junk)


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs"
)
def test_the_same_frames_encode_to_the_same_file_whatever_the_cpu_affinity(tmp_path) -> None:
    """x264's default thread count follows the usable CPUs, and its output follows the thread count."""
    import subprocess
    import sys

    script = (
        "import sys, numpy as np\n"
        "from sana_wm.utils.video_io import VideoWriter\n"
        "frames = (np.random.default_rng(0).random((16, 192, 352, 3)) * 255).astype(np.uint8)\n"
        "with VideoWriter(sys.argv[1], fps=16) as w:\n"
        "    w.write_many(frames)\n"
    )
    one_cpu = [min(os.sched_getaffinity(0))]
    files = []
    for name, preexec in (("all", None), ("one", lambda: os.sched_setaffinity(0, one_cpu))):
        out = tmp_path / f"{name}.mp4"
        subprocess.run([sys.executable, "-c", script, str(out)], check=True, preexec_fn=preexec)
        files.append(out.read_bytes())
    assert files[0] == files[1]
