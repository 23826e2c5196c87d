"""``sana-wm stream`` with the bundled demo model on the CPU: the mp4 grows while the command runs and ends
playable with every frame; the sidecar holds the poses of the frames; bad input exits 2 with one line."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from sana_wm.cli import main
from sana_wm.utils.video_io import read_video


def test_stream_writes_a_growing_playable_mp4(tmp_path) -> None:
    video = tmp_path / "walk.mp4"
    command = [sys.executable, "-m", "sana_wm", "stream", "--output_dir", str(tmp_path), "--name", "walk"]
    command += ["--num_frames", "49", "--steps", "8", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sizes = []
    while process.poll() is None:
        if video.exists():
            size = video.stat().st_size
            if not sizes or size != sizes[-1]:
                sizes.append(size)
        time.sleep(0.05)
    out, err = process.communicate()
    assert process.returncode == 0, err[-2000:]
    assert len([s for s in sizes if s > 0]) >= 2, sizes  # seen growing before the command ended
    frames, fps = read_video(video)
    assert frames.shape == (49, 192, 352, 3) and fps == 16.0
    assert frames.std() > 10  # a picture, not a blank
    sidecar = json.loads((tmp_path / "walk.json").read_text())
    assert sidecar["num_frames"] == 49 and len(sidecar["c2w"]) == 49
    settings = sidecar["settings"]
    assert settings["stream"]["num_cached_blocks"] == 2 and settings["command"] == "stream"
    assert "first chunk after" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--action", "w-12"], "--num_frames"),
        (["--num_cached_blocks", "2", "--denoising_step_list", "1000,500"], "--denoising_step_list"),
        (["--height", "100"], "--height"),
    ],
)
def test_stream_bad_input(tmp_path, capsys, args, message) -> None:
    code = main(["stream", "--output_dir", str(tmp_path), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not any(tmp_path.iterdir())


def test_stream_refuses_to_overwrite(tmp_path, capsys) -> None:
    (tmp_path / "output.mp4").write_bytes(b"keep")
    assert main(["stream", "--output_dir", str(tmp_path), "--num_frames", "25"]) == 2
    assert "exists" in capsys.readouterr().err
    assert (tmp_path / "output.mp4").read_bytes() == b"keep"
    assert np.array_equal(sorted(p.name for p in tmp_path.iterdir()), ["output.mp4"])
