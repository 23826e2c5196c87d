"""Inputs and decoding: 30 fps -> 16 fps by nearest timestamp, the official crop, sources of every kind."""

import numpy as np
import pytest

from sana_wm.annotate.decode import decode_frames, list_sources, stem_of
from sana_wm.errors import InputError
from sana_wm.utils.video_io import VideoWriter


def _counter_video(path, num=20, fps=30.0, height=96, width=160):
    """Frame i is grey level 10 * i, with a white column at x = 120 (right of centre)."""
    with VideoWriter(path, fps=fps, crf=0) as writer:
        for i in range(num):
            frame = np.full((height, width, 3), 10 * i, np.uint8)
            frame[:, 120:122] = 255
            writer.write(frame)


def test_decodes_at_16_fps_by_nearest_time_with_the_official_crop(tmp_path) -> None:
    _counter_video(tmp_path / "v.mp4")
    (source,) = list_sources(tmp_path / "v.mp4")
    out = list(decode_frames(source, fps=16.0, height=64, width=64))
    # 20 frames at 30 fps span 0.633 s: 16 fps targets 0 .. 10/16.
    assert len(out) == 11
    for k, (index, time, frame) in enumerate(out):
        assert abs(index - k * 30 / 16) <= 0.5 + 1e-9 and abs(time - index / 30) < 1e-6
        assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
        assert abs(float(np.median(frame)) - 10 * index) <= 3
    # Cover 64x64: 160x96 -> 107x64, centre crop from x = 21: the column lands at 120 * 107/160 - 21 = 59.
    column = np.argmax(out[0][2][32, :, 0].astype(int))
    assert abs(column - 59) <= 1


def test_sources_of_every_kind(tmp_path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("b clip.mp4", "a.mov"):
        (folder / name).write_bytes(b"x")
    (folder / "notes.txt").write_text("not a video")
    assert [s.name for s in list_sources(folder)] == ["a", "b_clip"]
    listing = tmp_path / "list.txt"
    listing.write_text("# two videos\nvideos/a.mov\n\nvideos/a.mov\n")
    assert [(s.name, s.path) for s in list_sources(listing)] == [
        ("a", folder / "a.mov"),
        ("a-1", folder / "a.mov"),
    ]
    assert stem_of("é/x y.z") == "x_y_z"
    with pytest.raises(InputError, match="does not exist"):
        list_sources(tmp_path / "missing.mp4")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no videos"):
        list_sources(empty)


def test_a_broken_file_is_an_input_error(tmp_path) -> None:
    (tmp_path / "bad.mp4").write_bytes(b"\x00garbage" * 100)
    (source,) = list_sources(tmp_path / "bad.mp4")
    with pytest.raises(InputError, match="bad.mp4"):
        list(decode_frames(source, fps=16.0, height=64, width=64))
