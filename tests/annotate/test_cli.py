"""``sana-wm annotate`` input errors: one line on stderr, exit 2, nothing written; broken videos reported."""

import json

import numpy as np
import pytest

from sana_wm.cli import main
from sana_wm.utils.video_io import VideoWriter


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["MISSING"], "INPUT: "),
        (["VIDEO", "--size", "100x100"], "--size: height and width must be multiples of 32"),
        (["VIDEO", "--clip_frames", "80"], "--clip_frames: must be 8k+1"),
        (["VIDEO", "--camera_height", "tall"], "--camera_height: expected metres or none"),
        (["VIDEO", "--depth_model", "no_such_module_xyz:make"], "--depth_model: cannot import"),
        (["VIDEO", "--caption_model", "json"], "--caption_model: expected MODULE:FACTORY"),
    ],
)
def test_bad_input_is_one_line_and_no_output(tmp_path, capsys, args, message) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    argv = [
        str(tmp_path / "missing.mp4") if a == "MISSING" else str(video) if a == "VIDEO" else a for a in args
    ]
    out = tmp_path / "out"
    assert main(["annotate", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sana-wm annotate: error: ") and message in err
    assert not out.exists()


def test_out_must_be_a_folder(tmp_path, capsys) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    (tmp_path / "file").write_text("")
    assert main(["annotate", str(video), "--out", str(tmp_path / "file")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_broken_and_dark_videos_are_report_lines(tmp_path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "broken.mp4").write_bytes(b"\x00not a video" * 50)
    with VideoWriter(videos / "dark.mp4", fps=16) as writer:  # 20 black frames then 30 grey ones: one cut
        for i in range(50):
            writer.write(np.full((64, 96, 3), 0 if i < 20 else 128, np.uint8))
    out = tmp_path / "out"
    argv = ["--quiet", "annotate", str(videos), "--out", str(out), "--size", "64x96", "--min_frames", "17"]
    assert main([*argv, "--clip_frames", "17"]) == 0
    lines = (out / "annotate_report.txt").read_text().splitlines()
    # Windows of 17 frames, split at the cut (frame 20), trimmed to 8k + 1 frames.
    assert lines[:4] == [
        "DROP dark_000: too dark (mean luma 0.0 < 20); static (max grey change 0.00 < 0.5)",
        "DROP dark_001: too short (1 frames < 17)",
        "DROP dark_002: static (max grey change 0.00 < 0.5)",
        "DROP dark_003: too short (9 frames < 17)",
    ]
    assert lines[4].startswith(f"BROKEN {videos / 'broken.mp4'}: ") and len(lines) == 5
    report = json.loads((out / "annotate_report.json").read_text())
    assert report["summary"]["kept"] == 0 and report["summary"]["broken_videos"] == 1
    assert report["summary"]["drop_reasons"] == {"static": 2, "too short": 2, "too dark": 1}
    assert report["shards"] == [] and not list((out / "raw").iterdir())
    # A rerun with other settings is refused before anything changes.
    assert main([*argv, "--clip_frames", "25"]) == 2
