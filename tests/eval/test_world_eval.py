"""The held-out-world evaluation end to end on the CPU: exact numbers with an oracle model, then a tiny
random pipeline through the library and through ``sana-wm eval-world``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.tiny_parts import block_means
from PIL import Image

from sana_wm.cli import main
from sana_wm.eval import EVAL_SEED_BASE, METHODS, EvalSettings, evaluate_worlds, pipeline_generate_fn
from sana_wm.eval.metrics import FLOW_STRIDE, PSNR_CAP_DB, psnr_per_frame, ssim_per_frame
from sana_wm.inference import SamplingSettings
from sana_wm.utils.video_io import read_video
from sana_wm.worlds import ClipSettings, make_clip, render

SETTINGS = EvalSettings(num_clips=2, num_frames=9, height=64, width=96, num_videos=1, seed=7)
KEYS = ["world_1000000_000000", "world_1000000_000001"]


def _clips(settings: EvalSettings) -> list:
    clip_settings = ClipSettings(
        num_frames=settings.num_frames, height=settings.height, width=settings.width, seed=settings.world_seed
    )
    return [make_clip(clip_settings, i) for i in range(settings.first_clip, settings.num_clips)]


def _ground_truth(clip, settings: EvalSettings) -> np.ndarray:
    path = clip.path
    return render(
        clip.world, path.c2w_F44, path.intrinsics_F4, settings.height, settings.width
    ).rgb_FHW3.numpy()


def test_an_oracle_scores_perfectly_and_a_still_oracle_equals_repeating_the_first_frame(tmp_path) -> None:
    """The 'model' renders the true world along the poses it is given: exact video for the true path, the
    first frame held for the camera-blind (static) path."""
    worlds = {clip.prompt: clip.world for clip in _clips(SETTINGS)}
    assert len(worlds) == 2
    calls = []

    def oracle(first_HW3, prompt, c2w_F44, intrinsics_F4, seed):
        # One render when the poses are all equal (the camera-blind call): the pixels are the same.
        count = 1 if (c2w_F44 == c2w_F44[0]).all() else len(c2w_F44)
        frames = render(worlds[prompt], c2w_F44[:count], intrinsics_F4[:count], *first_HW3.shape[:2])
        calls.append((prompt, c2w_F44.copy(), seed, frames.rgb_FHW3.numpy()))
        return np.repeat(calls[-1][3], len(c2w_F44) // count, axis=0)

    report = evaluate_worlds(oracle, SETTINGS, tmp_path, info={"model": "oracle"})
    assert json.loads((tmp_path / "eval.json").read_text()) == report
    assert [c["key"] for c in report["clips"]] == KEYS
    assert report["info"] == {"model": "oracle"} and report["settings"]["world_seed"] == EVAL_SEED_BASE
    # Clip i: the model then the camera-blind model, both with noise seed 7 + i; the latter holds pose 0.
    assert [call[2] for call in calls] == [7, 7, 8, 8]
    for _, c2w, _, _ in calls[1::2]:
        np.testing.assert_array_equal(c2w, np.repeat(c2w[:1], 9, axis=0))

    for clip in report["clips"]:
        model, still, blind = (clip["methods"][m] for m in ("model", "repeat_first", "camera_blind"))
        assert model["psnr_db_per_frame"] == [PSNR_CAP_DB] * 9 and model["psnr_db"] == PSNR_CAP_DB
        np.testing.assert_allclose(model["ssim_per_frame"], 1.0, atol=1e-6)
        assert (
            model["flow_agreement_per_pair"] == [1.0] * (9 - FLOW_STRIDE) and model["camera_following"] == 1.0
        )
        assert blind == still
        assert still["psnr_db_per_frame"][0] == PSNR_CAP_DB
        assert np.isclose(still["psnr_db"], np.mean(still["psnr_db_per_frame"][1:]))
        assert (
            still["psnr_db"] < 40.0 and still["flow_ratio"] < 0.01 and abs(still["camera_following"]) < 0.01
        )

    summary = report["summary"]
    still_mean = np.mean([c["methods"]["repeat_first"]["psnr_db"] for c in report["clips"]])
    assert np.isclose(summary["margin_db"]["repeat_first"], PSNR_CAP_DB - still_mean)
    assert summary["margin_db"]["camera_blind"] == summary["margin_db"]["repeat_first"]
    assert summary["target_met"] == {"repeat_first": True, "camera_blind": True}
    np.testing.assert_allclose(report["per_frame"]["model"]["psnr_db"], PSNR_CAP_DB)
    assert sum(s["num_clips"] for s in report["by_trajectory"].values()) == 2

    assert Image.open(tmp_path / "psnr_per_frame.png").size == (1100, 700)
    assert report["files"]["videos"] == [f"videos/{KEYS[0]}.mp4"]
    video, fps = read_video(tmp_path / "videos" / f"{KEYS[0]}.mp4")
    assert video.shape == (9, 64, 3 * 96, 3) and fps == 16.0
    # Below the panel titles (H.264 keeps 8 x 8 block means): the ground truth in the middle, a frame off
    # it is clearly worse; the overlay is the mean of the generated panel (HUD included) and the middle one.
    gen, middle, overlay = (block_means(video[:, 16:, i * 96 : (i + 1) * 96]) for i in range(3))
    gt = calls[0][3][:, 16:]  # the oracle's render of clip 0 along its path
    assert np.abs(middle - block_means(gt)).mean() < 2.5
    assert np.abs(middle[1:] - block_means(gt[:-1])).mean() > 5.0
    assert np.abs(overlay - (gen + middle) / 2).mean() < 2.5


def test_tiny_pipeline_end_to_end(tmp_path, tiny_pipeline) -> None:
    generated = []
    generate = pipeline_generate_fn(tiny_pipeline, SamplingSettings(steps=1, cfg_scale=1.0))

    def recording(*args):
        generated.append(generate(*args))
        return generated[-1]

    report = evaluate_worlds(recording, SETTINGS, tmp_path)
    assert sorted(report) == sorted(
        ["format", "settings", "info", "definitions", "summary", "per_frame", "by_trajectory", "clips"]
        + ["files", "timings_s"]
    )
    for i, (clip, result) in enumerate(zip(_clips(SETTINGS), report["clips"], strict=True)):
        gt = _ground_truth(clip, SETTINGS)
        model, blind = generated[2 * i], generated[2 * i + 1]
        methods = result["methods"]
        # The report's numbers are the metrics of what the pipeline generated against an independent render.
        np.testing.assert_allclose(methods["model"]["psnr_db_per_frame"], psnr_per_frame(model, gt))
        np.testing.assert_allclose(methods["camera_blind"]["ssim_per_frame"], ssim_per_frame(blind, gt))
        still = methods["repeat_first"]["psnr_db_per_frame"]
        assert still[0] == PSNR_CAP_DB and max(still[1:]) < PSNR_CAP_DB
        # Frame 0 of a generated video is the VAE's reconstruction of the image, not a copy.
        assert methods["model"]["psnr_db_per_frame"][0] < 60.0
        # The camera input matters: same seed, image and prompt, different video.
        assert np.abs(model.astype(int) - blind.astype(int)).max() > 0
        assert len(methods["model"]["flow_agreement_per_pair"]) == 9 - FLOW_STRIDE
    summary = report["summary"]
    for method in METHODS:
        expected = np.mean([c["methods"][method]["psnr_db"] for c in report["clips"]])
        assert np.isclose(summary[method]["psnr_db"], expected)
    assert np.isclose(
        summary["margin_db"]["camera_blind"], summary["model"]["psnr_db"] - summary["camera_blind"]["psnr_db"]
    )
    assert (tmp_path / "videos" / f"{KEYS[0]}.mp4").is_file()
    assert not (tmp_path / "videos" / f"{KEYS[1]}.mp4").exists()


ARGS = ["--quiet", "eval-world", "--num_clips", "1", "--frames", "9", "--size", "64x96", "--steps", "1"]


def test_cli_runs_the_evaluation(tmp_path, tiny_pipeline, monkeypatch) -> None:
    import sana_wm.cli.eval_world as cli
    import sana_wm.inference.run as run

    monkeypatch.setattr(run, "load", lambda source, runtime: tiny_pipeline)
    out = tmp_path / "eval"
    argv = [*ARGS, "--cfg_scale", "1", "--num_videos", "0", "--model_path", "tiny", "--out", str(out)]
    assert main(argv) == 0
    assert cli.EVAL_SEED_BASE == EVAL_SEED_BASE  # spelled out in the CLI to keep --help light
    report = json.loads((out / "eval.json").read_text())
    assert report["settings"]["num_clips"] == 1 and report["settings"]["height"] == 64
    assert report["info"]["steps"] == 1 and report["info"]["model"] == "tiny"
    assert report["files"]["videos"] == [] and not (out / "videos").exists()
    assert report["summary"]["num_clips"] == 1 and report["clips"][0]["key"] == KEYS[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--frames", "10"], "--frames: must be 8k+1"),
        (["--size", "64x90"], "--width: must be a positive multiple of 32"),
        (["--num_videos", "2"], "--num_videos: must be 0 to --num_clips (1)"),
        (["--steps", "0"], "--steps: must be"),
        (["--out", "{file}"], "exists and is not a folder"),
    ],
)
def test_cli_bad_input_is_one_line_before_any_model_is_loaded(tmp_path, monkeypatch, capsys, extra, message):
    import sana_wm.inference.run as run

    def refuse(*args):
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr(run, "load", refuse)
    (tmp_path / "file").write_text("")
    extra = [arg.format(file=tmp_path / "file") for arg in extra]
    assert main([*ARGS, "--model_path", "tiny", "--out", str(tmp_path / "e"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "e").exists()


def test_defaults_come_from_the_demo_model_or_the_release(monkeypatch) -> None:
    """One table: the demo model's row is its recorded settings, the release's row the official defaults."""
    from pathlib import Path

    import sana_wm.inference.demo_model as demo_model
    from sana_wm.inference.source import RELEASE_DEFAULTS, ModelSource

    demo = demo_model.DemoSettings(
        height=96, width=160, num_frames=17, steps=3, cfg_scale=1.0, flow_shift=2.5
    )
    monkeypatch.setattr(demo_model, "read_demo_settings", lambda folder: demo)
    got = ModelSource(demo_dir=Path("x")).defaults()
    assert (got.height, got.width, got.num_frames, got.steps, got.cfg_scale, got.flow_shift, got.sampler) == (
        96,
        160,
        17,
        3,
        1.0,
        2.5,
        "ltx_euler",
    )
    release = ModelSource(model_path="m").defaults()
    assert release is RELEASE_DEFAULTS
    assert (release.height, release.width, release.num_frames, release.steps, release.cfg_scale) == (
        704,
        1280,
        161,
        60,
        5.0,
    )
    assert (release.flow_shift, release.sampler) == (9.8, "ltx_euler")


@pytest.fixture(scope="module")
def tiny_stream_pipeline(tiny_pipeline):
    """``tiny_pipeline``'s weights as a chunk-causal model (chunks of 3 latent frames)."""
    import copy
    import dataclasses

    from sana_wm.models import SanaWMTransformer

    model = SanaWMTransformer(dataclasses.replace(tiny_pipeline.transformer.config, chunk_size=3)).eval()
    model.load_state_dict(tiny_pipeline.transformer.state_dict())
    pipe = copy.copy(tiny_pipeline)
    pipe.transformer = model
    return pipe


def test_streaming_evaluation_generates_through_the_stream_session(tmp_path, tiny_stream_pipeline) -> None:
    from sana_wm.eval import stream_generate_fn
    from sana_wm.inference.streaming import StreamSession, StreamSettings

    settings = StreamSettings(step_list=None, steps=2, flow_shift=3.0)
    clip = make_clip(ClipSettings(num_frames=25, height=64, width=96, seed=1_000_000), 0)
    first = _ground_truth(clip, EvalSettings(num_frames=25, height=64, width=96))[0]
    path = clip.path
    got = stream_generate_fn(tiny_stream_pipeline, settings)(first, "", path.c2w_F44, path.intrinsics_F4, 5)
    session = StreamSession.create(
        tiny_stream_pipeline, Image.fromarray(first), "", path.c2w_F44, path.intrinsics_F4[0], 25,
        StreamSettings(step_list=None, steps=2, flow_shift=3.0, seed=5, height=64, width=96),
    )  # fmt: skip
    want = np.concatenate([chunk.frames for chunk in session])
    assert got.shape == (25, 64, 96, 3)
    np.testing.assert_array_equal(got, want)
    other = stream_generate_fn(tiny_stream_pipeline, settings)(first, "", path.c2w_F44, path.intrinsics_F4, 6)
    assert np.abs(other.astype(int) - got.astype(int)).max() > 0  # the clip's seed is used


def test_cli_streaming_evaluation(tmp_path, tiny_stream_pipeline, monkeypatch, capsys) -> None:
    import sana_wm.inference.stream_job as stream_job

    monkeypatch.setattr(
        stream_job, "load_stream_pipeline", lambda source, runtime: (tiny_stream_pipeline, None)
    )
    out = tmp_path / "eval"
    base = ["--quiet", "eval-world", "--num_clips", "1", "--size", "64x96", "--steps", "1", "--streaming"]
    argv = [*base, "--cfg_scale", "1", "--num_videos", "0", "--model_path", "tiny", "--out", str(out)]
    assert main([*argv, "--frames", "25"]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["info"]["streaming"] is True and report["settings"]["num_frames"] == 25
    assert len(report["clips"][0]["methods"]["model"]["psnr_db_per_frame"]) == 25
    assert main([*argv, "--frames", "33"]) == 2
    assert "--frames: with --streaming, 24k+1 frames (e.g. 25)" in capsys.readouterr().err
