"""eval-world's camera accuracy: off by default, and with it on every clip gets an SfM row (or its error)."""

import numpy as np

from sana_wm.eval import EvalSettings, evaluate_worlds
from sana_wm.eval.camera_accuracy import summarise_camera
from sana_wm.worlds import ClipSettings, make_clip, render


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


def test_eval_world_reports_camera_accuracy_only_when_asked(tmp_path, monkeypatch) -> None:
    """The wiring, with the SfM replaced by a stub that knows which video it got (the real estimator is
    checked against exact poses in test_end_to_end)."""
    import sana_wm.eval.camera_accuracy as camera

    settings = EvalSettings(
        num_clips=1, num_frames=9, height=64, width=96, num_videos=0, camera_accuracy=True
    )
    clip = make_clip(ClipSettings(num_frames=9, height=64, width=96, seed=settings.world_seed), 0)
    gt = render(clip.world, clip.path.c2w_F44, clip.path.intrinsics_F4, 64, 96).rgb_FHW3.numpy()
    calls = []

    def stub(video, commanded):
        calls.append(commanded)
        is_gt = np.array_equal(video, gt)
        return {
            "rot_err_deg": 0.5 if is_gt else 2.0,
            "trans_err": 0.1,
            "cammc": 0.2,
            "ate_pct_path": 1.0,
            "registered_fraction": 1.0,
        }

    monkeypatch.setattr(camera, "estimate_errors", stub)

    def model(first_HW3, prompt, c2w_F44, intrinsics_F4, seed):
        return np.repeat(first_HW3[None], len(c2w_F44), axis=0)  # a still video, not the ground truth

    report = evaluate_worlds(model, settings, tmp_path / "on")
    assert len(calls) == 2 and all(np.array_equal(c, clip.path.c2w_F44) for c in calls)
    row = report["clips"][0]["camera_accuracy"]
    assert (row["model"]["rot_err_deg"], row["ground_truth"]["rot_err_deg"]) == (2.0, 0.5)
    assert report["camera_accuracy"]["model"]["reconstructed"] == 1
    assert report["camera_accuracy"]["ground_truth"]["rot_err_deg"] == 0.5
    # Off by default: the existing eval-world runs (tests/eval) are unchanged.
    assert EvalSettings().camera_accuracy is False
