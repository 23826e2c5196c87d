"""eval-world's camera accuracy: off by default, and with it on every clip gets an SfM row (or its error)."""

import math

import numpy as np
import pytest

from sana_wm.eval import EvalSettings, evaluate_worlds
from sana_wm.eval.camera_accuracy import summarise_camera
from sana_wm.worlds import ClipSettings, make_clip, render

pytest.importorskip("pycolmap")


def test_summary_averages_reconstructed_clips_and_counts_failures() -> None:
    ok = {"rot_err_deg": 1.0, "trans_err": 0.2, "cammc": 0.3, "ate_pct_path": 2.0, "registered_fraction": 1.0}
    records = [
        {"model": ok, "ground_truth": {**ok, "rot_err_deg": 0.5}},
        {
            "model": {**ok, "rot_err_deg": 3.0},
            "ground_truth": {"error": "no initial pair", "registered_fraction": 0},
        },
    ]
    summary = summarise_camera(records)
    assert summary["model"]["rot_err_deg"] == 2.0 and summary["model"]["reconstructed"] == 2
    assert summary["ground_truth"] == {**summary["ground_truth"], "rot_err_deg": 0.5, "failed": 1}


def test_eval_world_reports_camera_accuracy_only_when_asked(tmp_path) -> None:
    settings = EvalSettings(
        num_clips=1, num_frames=9, height=64, width=96, num_videos=0, camera_accuracy=True
    )
    clip = make_clip(ClipSettings(num_frames=9, height=64, width=96, seed=settings.world_seed), 0)

    def oracle(first_HW3, prompt, c2w_F44, intrinsics_F4, seed):
        return render(clip.world, c2w_F44, intrinsics_F4, 64, 96).rgb_FHW3.numpy()

    report = evaluate_worlds(oracle, settings, tmp_path / "on")
    row = report["clips"][0]["camera_accuracy"]
    assert set(row) == {"model", "ground_truth"}
    for video in ("model", "ground_truth"):  # 9 tiny frames: SfM reconstructs them or says why not
        assert ("error" in row[video]) or math.isfinite(row[video]["rot_err_deg"])
        summary = report["camera_accuracy"][video]
        assert summary["reconstructed"] + summary["failed"] == 1
    off = evaluate_worlds(
        oracle, EvalSettings(num_clips=1, num_frames=9, height=64, width=96, num_videos=0), tmp_path / "off"
    )
    assert "camera_accuracy" not in off and "camera_accuracy" not in off["clips"][0]
    assert np.isclose(off["summary"]["model"]["psnr_db"], report["summary"]["model"]["psnr_db"])
