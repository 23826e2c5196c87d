"""``sana-wm generate`` with the stage-2 refiner (the default) on tiny local weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.tiny_parts import (
    HEIGHT,
    INTRINSICS,
    PROMPT,
    WIDTH,
    block_means,
    frame_correlations,
    make_pipeline,
    refiner_args,
    save_png,
    weight_args,
)
from safetensors import safe_open
from safetensors.torch import load_file

from sana_wm.camera import action_to_c2w
from sana_wm.cli import main
from sana_wm.inference import GenerationRequest
from sana_wm.inference.refiner import Refiner, decode_refined
from sana_wm.inference.weights import OFFICIAL_REPO, resolve_refiner_weights
from sana_wm.utils.video_io import probe_video, read_sidecar, read_video
from sana_wm.vae import VideoVAE
from sana_wm.viz.overlay import HUD_KEY_LABELS, apply_overlay

ACTION = "w-8,jw-8"
SETTINGS = ["--num_frames", "17", "--steps", "2", "--height", str(HEIGHT), "--width", str(WIDTH)]
# The same generation through the library (the CLI adds --seed 5).
STAGE1 = dict(
    action=ACTION, intrinsics=INTRINSICS, num_frames=17, steps=2, seed=5, height=HEIGHT, width=WIDTH
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _argv(tmp_path, tiny, tiny_dirs, out_dir) -> list[str]:
    image = save_png(tmp_path / "first.png", tiny.image)
    intrinsics = tmp_path / "intrinsics.npy"
    np.save(intrinsics, np.array(INTRINSICS, dtype=np.float32))
    return [
        "generate",
        *["--image", image, "--prompt_text", PROMPT, "--intrinsics", str(intrinsics), "--action", ACTION],
        *SETTINGS,
        *["--device", "cpu", "--seed", "5", "--output_dir", str(out_dir), "--quiet"],
        *weight_args(tiny_dirs),
    ]


def test_refined_video_stage1_video_sidecars_and_latents(tmp_path, tiny, tiny_dirs, refiner_dir) -> None:
    out_dir = tmp_path / "out"
    argv = _argv(tmp_path, tiny, tiny_dirs, out_dir) + refiner_args(refiner_dir)
    argv += ["--name", "clip", "--save_stage1", "--save_latents", "--refiner_seed", "3"]
    assert main(argv) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "clip.json",
        "clip.mp4",
        "clip_latents.safetensors",
        "clip_stage1.json",
        "clip_stage1.mp4",
        "clip_stage1_latents.safetensors",
    ]

    # Stage 1 as the pipeline makes it; the refined latents as the refiner library makes them from those.
    stage1 = make_pipeline(tiny)(GenerationRequest.create(tiny.image, PROMPT, **STAGE1), progress=False)
    stage1_latents = load_file(out_dir / "clip_stage1_latents.safetensors")["latents"]
    assert torch.equal(stage1_latents, stage1.latents)
    paths = resolve_refiner_weights(refiner_dir, refiner_dir / "text_encoder", local_files_only=True)
    want = Refiner.from_paths(paths, device="cpu", dtype=torch.float32)(
        stage1_latents, PROMPT, seed=3, progress=False
    )
    refined_latents = load_file(out_dir / "clip_latents.safetensors")["latents"]
    assert torch.equal(refined_latents, want)
    with safe_open(str(out_dir / "clip_latents.safetensors"), framework="pt") as handle:
        assert handle.metadata()["stage"] == "refined"

    # F = 17 frames: the refined video has 16, drawn with the HUD of poses 1..16; stage 1 has all 17.
    c2w = action_to_c2w(ACTION)[:17]
    labels = HUD_KEY_LABELS["v1"]
    videos = {
        "clip": (16, apply_overlay(decode_refined(VideoVAE(tiny.vae), want), c2w[1:], key_labels=labels)),
        "clip_stage1": (17, apply_overlay(stage1.frames, c2w, key_labels=labels)),
    }
    for stem, (count, expected_frames) in videos.items():
        assert probe_video(out_dir / f"{stem}.mp4") == {
            "frames": count,
            "height": HEIGHT,
            "width": WIDTH,
            "fps": 16.0,
        }
        video, _ = read_video(out_dir / f"{stem}.mp4")
        expected = np.stack(list(expected_frames))
        # H.264 keeps random-weight pixel noise only coarsely (see test_generate_cli): compare block means
        # and the frame order.
        assert np.abs(block_means(video) - block_means(expected)).mean() < 3.0, stem
        assert (frame_correlations(video, expected).argmax(axis=1) == np.arange(count)).all(), stem

    refined, first = read_sidecar(out_dir / "clip.json"), read_sidecar(out_dir / "clip_stage1.json")
    np.testing.assert_array_equal(refined.c2w, c2w[1:17])
    np.testing.assert_array_equal(first.c2w, c2w)
    np.testing.assert_array_equal(first.intrinsics, stage1.intrinsics)
    np.testing.assert_array_equal(refined.intrinsics, stage1.intrinsics[1:17])
    s, s1 = refined.settings, first.settings
    assert (s["video"], s["num_frames"], s["num_frames_stage1"], s["refiner"]) == ("clip.mp4", 16, 17, True)
    assert (s1["video"], s1["num_frames"], s1["refiner"]) == ("clip_stage1.mp4", 17, False)
    assert s1["latents"] == "clip_stage1_latents.safetensors"
    assert s["refiner_settings"]["seed"] == 3 and s["refiner_settings"]["mode"] == "single_shot"
    assert s["refiner_settings"]["checkpoint"] == str(refiner_dir)
    timings = s["timings_s"]
    assert {"sampling", "refiner_load", "refine_text", "refine", "decode", "decode_stage1", "total"} <= set(
        timings
    )
    assert timings == s1["timings_s"]


def test_chunk_causal_flags_reach_the_refiner(tmp_path, tiny, tiny_dirs, refiner_dir) -> None:
    out_dir = tmp_path / "out"
    argv = _argv(tmp_path, tiny, tiny_dirs, out_dir) + refiner_args(refiner_dir)
    argv += ["--refiner_mode", "chunk_causal", "--refiner_block_size", "1", "--refiner_kv_max_frames", "2"]
    assert main([*argv, "--save_latents", "--no_action_overlay"]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "output.json",
        "output.mp4",
        "output_latents.safetensors",
    ]
    stage1 = make_pipeline(tiny)(GenerationRequest.create(tiny.image, PROMPT, **STAGE1), progress=False)
    paths = resolve_refiner_weights(refiner_dir, refiner_dir / "text_encoder", local_files_only=True)
    refiner = Refiner.from_paths(paths, device="cpu", dtype=torch.float32)
    chunked = refiner(
        stage1.latents, PROMPT, mode="chunk_causal", block_size=1, kv_max_frames=2, progress=False
    )
    assert torch.equal(load_file(out_dir / "output_latents.safetensors")["latents"], chunked)
    assert not torch.equal(chunked, refiner(stage1.latents, PROMPT, progress=False))
    settings = read_sidecar(out_dir / "output.json").settings["refiner_settings"]
    assert (settings["mode"], settings["block_size"], settings["kv_max_frames"]) == ("chunk_causal", 1, 2)


@pytest.mark.parametrize("where", ["release", "local"])
def test_offline_missing_refiner_files_are_listed_with_their_flags(
    tmp_path, tiny, tiny_dirs, monkeypatch, capsys, where
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty_hub_cache"))
    out_dir = tmp_path / "out"
    argv = _argv(tmp_path, tiny, tiny_dirs, out_dir)
    if where == "local":
        argv += [
            "--refiner_checkpoint",
            str(tmp_path / "nowhere"),
            "--refiner_gemma_root",
            str(tmp_path / "g3"),
        ]
        expected = [
            f"--refiner_checkpoint: no such file or folder: {tmp_path / 'nowhere' / 'transformer'}",
            f"--refiner_checkpoint: no such file or folder: {tmp_path / 'nowhere' / 'connectors'}",
            f"--refiner_gemma_root: no such file or folder: {tmp_path / 'g3'}",
        ]
    else:
        reason = "(not in the Hugging Face cache, offline mode)"
        expected = [
            f"missing refiner/transformer/ from {OFFICIAL_REPO} {reason}: pass --refiner_checkpoint DIR",
            f"missing refiner/connectors/ from {OFFICIAL_REPO} {reason}: pass --refiner_checkpoint DIR",
            f"missing refiner/text_encoder/ from {OFFICIAL_REPO} {reason}: pass --refiner_gemma_root DIR",
        ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [f"sana-wm generate: error: {line}" for line in expected]
    assert not out_dir.exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--sink_size", "3"], "--sink_size: must be in [1, 2] for 3 latent frames"),
        (["--refiner_kv_max_frames", "1"], "--refiner_kv_max_frames: must exceed the sink size 1, got 1"),
        (["--refiner_block_size", "0"], "--refiner_block_size: must be >= 1, got 0"),
        (["--refiner_mode", "causal"], "--refiner-mode: invalid choice: 'causal'"),
        (["--num_frames", "1"], "--num_frames: must be a whole number in [9, 100000], got 1"),
        (["--refiner_checkpoint", "refiner.safetensors"], "refiner.safetensors is a file; pass the folder"),
    ],
)
def test_bad_refiner_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path, tiny, tiny_dirs, capsys, flags, message
) -> None:
    out_dir = tmp_path / "out"
    argv = _argv(tmp_path, tiny, tiny_dirs, out_dir) + flags
    try:
        code = main(argv)
    except SystemExit as exited:  # argparse
        code = exited.code
    assert code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not out_dir.exists()
