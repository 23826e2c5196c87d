"""A rendered clip with exact poses through ``sana-wm annotate`` -> ``cache-latents`` -> ``train``, compared
by number: poses against the ground truth, the written layout against the record, resume, training."""

import json
import math
import zipfile

import numpy as np
import pytest
from helpers.training import debug_config

from sana_wm.annotate.validate import Case, render_validation_set
from sana_wm.cli import main
from sana_wm.data import CameraTable, ZipLatentDataset
from sana_wm.tiny import randomize_latent_stats, tiny_ltx2_vae
from sana_wm.train import read_metrics, train

pytest.importorskip("pycolmap")

H, W, F, HFOV = 256, 448, 41, 90.0
FOCAL = (W / 2) / math.tan(math.radians(HFOV) / 2)


def _annotate(root, *extra):
    argv = [
        "--quiet",
        "annotate",
        str(root / "rendered"),
        "--out",
        str(root / "dataset"),
        "--size",
        f"{H}x{W}",
    ]
    argv += ["--clip_frames", str(F), "--min_frames", "17", "--focal", f"{FOCAL:.4f}", "--threads", "1"]
    return main([*argv, *extra])  # one SfM thread: COLMAP is deterministic then


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    """One dev-seed clip walking while pitching (the eval seeds are for the reported table only), focal
    given, one SfM thread (deterministic)."""
    root = tmp_path_factory.mktemp("annotate")
    render_validation_set(
        root / "rendered",
        "dev",
        num_frames=F,
        height=H,
        width=W,
        chosen=[Case(6, "walk_pitch", HFOV, "full")],
    )
    assert _annotate(root) == 0
    report = json.loads((root / "dataset" / "annotate_report.json").read_text())
    return root, report


def test_poses_match_the_ground_truth(annotated) -> None:
    _, report = annotated
    (clip,) = report["clips"]
    assert clip["kept"], clip["reasons"]
    check = clip["gt_check"]
    assert clip["camera_qc"]["registered_fraction"] >= 0.95
    assert check["registered"]["rot_err_deg"] < 1.0
    assert check["registered"]["ate_pct_path"] < 2.0
    assert abs(check["focal_err_pct"]) < 1e-3  # given, held fixed
    # Metric scale from the ground truth: it is the similarity's scale itself.
    assert clip["metric_scale"]["source"] == "gt"
    assert math.isclose(clip["metric_scale"]["median"], check["true_scale"], rel_tol=1e-9)


def test_the_dataset_is_the_official_layout(annotated) -> None:
    root, report = annotated
    (clip,) = report["clips"]
    key = clip["key"]
    raw = root / "dataset" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == [
        "annotated_00000.zip",
        "annotated_00000_camera.npz",
        "annotated_00000_camera_qc.json",
        "annotated_00000_flow_dis.json",
        "annotated_00000_luma.json",
        "annotated_00000_metric_scale_stats.json",
        "annotated_00000_saturation.json",
    ]
    with zipfile.ZipFile(raw / "annotated_00000.zip") as archive:
        assert archive.namelist() == [f"{key}.json", f"{key}.mp4"]
        info = json.loads(archive.read(f"{key}.json"))
    assert (info["width"], info["height"], info["num_frames"], info["fps"]) == (W, H, F, 16.0)
    c2w, intrinsics = CameraTable.load(raw / "annotated_00000_camera.npz").get(key)
    assert c2w.shape == (F, 4, 4) and intrinsics.shape == (F, 4)
    np.testing.assert_allclose(c2w[0], np.eye(4), atol=1e-6)  # relative to the first frame
    np.testing.assert_allclose(intrinsics, np.tile([FOCAL, FOCAL, W / 2, H / 2], (F, 1)), rtol=1e-5)
    scales = json.loads((raw / "annotated_00000_metric_scale_stats.json").read_text())
    assert scales[key]["median"] == clip["metric_scale"]["median"]
    flows = json.loads((raw / "annotated_00000_flow_dis.json").read_text())
    assert flows == {key: {"score": clip["stats"]["flow_dis"]}}


def test_a_rerun_resumes_without_redoing_the_clip(annotated) -> None:
    root, report = annotated
    record = root / "dataset" / "annotate_work" / report["clips"][0]["key"] / "record.json"
    before = record.stat().st_mtime_ns
    assert _annotate(root) == 0
    assert record.stat().st_mtime_ns == before
    again = json.loads((root / "dataset" / "annotate_report.json").read_text())
    assert again["clips"] == report["clips"]


def test_annotated_clips_train(annotated, tmp_path) -> None:
    root, _ = annotated
    dataset = root / "dataset"
    randomize_latent_stats(tiny_ltx2_vae(4, seed=0), seed=1).save_pretrained(tmp_path / "vae")
    assert (
        main(["--quiet", "cache-latents", str(dataset), "--vae", str(tmp_path / "vae"), "--device", "cpu"])
        == 0
    )
    reader = ZipLatentDataset(dataset / "raw", dataset / "latents")
    (sample,) = [reader[0]]
    assert sample["latents"].shape == (4, (F - 1) // 8 + 1, H // 32, W // 32)
    assert sample["metric_scale"] > 0 and sample["camera_conditions"].shape[0] == sample["latents"].shape[1]
    cfg = debug_config(
        tmp_path,
        "data.kind=zip",
        f"data.raw_dir={dataset / 'raw'}",
        f"data.latent_dir={dataset / 'latents'}",
        "data.text_encoder=none",
        "data.text_max_length=6",
        "max_steps=2",
        "global_batch_size=1",
        "checkpoint.every=0",
    )
    train(cfg)
    losses = [r["loss"] for r in read_metrics(cfg.out_dir)]
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses)
