"""``sana-wm generate`` end to end with tiny local weights; every bad input: one line, exit 2, no output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
    save_png,
    tiny_gemma,
    weight_args,
)
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from sana_wm.camera import action_to_c2w
from sana_wm.cli import main
from sana_wm.inference import GenerationRequest
from sana_wm.utils.video_io import probe_video, read_sidecar, read_video
from sana_wm.viz.overlay import HUD_KEY_LABELS, apply_overlay

ACTION = "w-8,jw-8"


def _inputs(tmp_path, tiny) -> list[str]:
    image = save_png(tmp_path / "first.png", tiny.image)
    prompt = tmp_path / "prompt.txt"
    prompt.write_text(PROMPT + "\n", encoding="utf-8")
    intrinsics = tmp_path / "intrinsics.npy"
    np.save(intrinsics, np.array(INTRINSICS, dtype=np.float32))
    return ["--image", image, "--prompt", str(prompt), "--intrinsics", str(intrinsics)]


def _settings() -> list[str]:
    return [
        "--num_frames",
        "17",
        "--steps",
        "2",
        "--height",
        str(HEIGHT),
        "--width",
        str(WIDTH),
        "--device",
        "cpu",
    ]


def test_generate_writes_video_sidecar_and_latents(tmp_path, tiny, tiny_dirs, capsys, caplog) -> None:
    out_dir = tmp_path / "out"
    argv = ["generate", *_inputs(tmp_path, tiny), "--action", ACTION, *_settings(), *weight_args(tiny_dirs)]
    argv += ["--output_dir", str(out_dir), "--name", "clip", "--save_latents", "--seed", "5", "--quiet"]
    assert main([*argv, "--no_refiner", "--save_stage1"]) == 0
    assert "denoise" not in capsys.readouterr().err  # --quiet: no progress bars...
    assert "--save_stage1: ignored with --no_refiner" in caplog.text  # ...but warnings stay
    assert sorted(p.name for p in out_dir.iterdir()) == ["clip.json", "clip.mp4", "clip_latents.safetensors"]

    want = make_pipeline(tiny)(
        GenerationRequest.create(
            tiny.image,
            PROMPT,
            action=ACTION,
            intrinsics=INTRINSICS,
            num_frames=17,
            steps=2,
            seed=5,
            height=HEIGHT,
            width=WIDTH,
        ),
        progress=False,
    )
    latents = load_file(out_dir / "clip_latents.safetensors")["latents"]
    assert torch.equal(latents, want.latents)

    assert probe_video(out_dir / "clip.mp4") == {"frames": 17, "height": HEIGHT, "width": WIDTH, "fps": 16.0}
    video, fps = read_video(out_dir / "clip.mp4")
    expected = np.stack(list(apply_overlay(want.frames, want.c2w, key_labels=HUD_KEY_LABELS["v1"])))
    # Random weights decode to pixel noise, which H.264 (CRF 18, 4:2:0 chroma) keeps only coarsely: compare
    # 8x8 block means (measured 1.8 levels apart on average), and check every frame correlates best with
    # its own expected frame (frame order).
    assert fps == 16.0 and video.shape == expected.shape
    assert np.abs(block_means(video) - block_means(expected)).mean() < 3.0
    corr = frame_correlations(video, expected)
    assert (corr.argmax(axis=1) == np.arange(17)).all()

    sidecar = read_sidecar(out_dir / "clip.json")
    np.testing.assert_array_equal(sidecar.c2w, action_to_c2w(ACTION)[:17])
    np.testing.assert_allclose(sidecar.intrinsics, want.intrinsics, rtol=1e-6)
    assert sidecar.seed == 5
    s = sidecar.settings
    assert (s["num_frames"], s["steps"], s["cfg_scale"], s["flow_shift"], s["refiner"]) == (
        17,
        2,
        5.0,
        9.8,
        False,
    )
    assert s["action"] == ACTION and s["prompt"] == PROMPT and s["intrinsics_source"] == "given"
    assert s["latents"] == "clip_latents.safetensors" and s["dtype"] == "float32"
    assert s["backend"] == "torch" and s["model"] == "release"  # --backend auto on the CPU
    assert {"text_encode", "vae_encode", "sampling", "decode", "write", "total"} <= set(s["timings_s"])


def test_generate_accepts_a_camera_file_and_prompt_text(tmp_path, tiny, tiny_dirs) -> None:
    poses = tmp_path / "c2w.npy"
    np.save(poses, action_to_c2w("w-12")[:10])  # 10 poses -> 9 frames
    image = save_png(tmp_path / "first.png", tiny.image)
    argv = ["generate", "--image", image, "--prompt-text", PROMPT, "--camera", str(poses), *_settings()]
    argv += [
        *weight_args(tiny_dirs),
        "--output-dir",
        str(tmp_path / "out"),
        "--no_action_overlay",
        "--cfg_scale",
        "1",
        "--backend",
        "reference",
    ]
    assert main([*argv, "--no_refiner"]) == 0
    sidecar = read_sidecar(tmp_path / "out" / "output.json")
    assert sidecar.settings["backend"] == "reference"  # --backend reaches the release pipeline
    assert probe_video(tmp_path / "out" / "output.mp4")["frames"] == 9 == len(sidecar.c2w)
    assert sidecar.settings["intrinsics_source"] == "default" and sidecar.settings["camera"] == str(poses)
    assert not (tmp_path / "out" / "output_latents.safetensors").exists()


def _bad_image(tmp_path, argv: list[str]) -> list[str]:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png at all")
    return _replace(argv, "--image", str(bad))


def _replace(argv: list[str], flag: str, value: str) -> list[str]:
    argv = list(argv)
    argv[argv.index(flag) + 1] = value
    return argv


def _prompt_bytes(tmp_path, argv: list[str], data: bytes) -> list[str]:
    path = tmp_path / "bad_prompt.txt"
    path.write_bytes(data)
    return _replace(argv, "--prompt", str(path))


def _intrinsics(tmp_path, argv: list[str], array: np.ndarray) -> list[str]:
    path = tmp_path / "bad_intrinsics.npy"
    np.save(path, array)
    return _replace(argv, "--intrinsics", str(path))


def _corrupt_checkpoint(tmp_path, argv: list[str], tiny_dirs) -> list[str]:
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(tiny_dirs.model.read_bytes()[:4000])
    return _replace(argv, "--model_path", str(path))


def _checkpoint_missing_a_key(tmp_path, argv: list[str], tiny_dirs) -> list[str]:
    with safe_open(str(tiny_dirs.model), framework="pt") as handle:
        metadata = handle.metadata()
    state = load_file(tiny_dirs.model)
    del state["blocks.2.attn.qkv.weight"]
    path = tmp_path / "mismatched.safetensors"
    save_file(state, str(path), metadata=metadata)
    return _replace(argv, "--model_path", str(path))


def _narrow_text_encoder(tmp_path, argv: list[str], tiny) -> list[str]:
    folder = tmp_path / "narrow_gemma"
    tiny_gemma(hidden_size=32).save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    return _replace(argv, "--text_encoder_path", str(folder))


BAD_INPUTS = {
    "unreadable_image": (lambda t, a, tiny, d: _bad_image(t, a), "--image: cannot read"),
    "missing_prompt": (
        lambda t, a, tiny, d: _replace(a, "--prompt", str(t / "nope.txt")),
        "--prompt: file not found",
    ),
    "non_utf8_prompt": (lambda t, a, tiny, d: _prompt_bytes(t, a, b"caf\xe9 \xff"), "is not UTF-8 text"),
    "empty_prompt": (lambda t, a, tiny, d: _prompt_bytes(t, a, b" \n "), "--prompt:"),
    "intrinsics_shape": (
        lambda t, a, tiny, d: _intrinsics(t, a, np.ones(5)),
        "--intrinsics: unsupported shape",
    ),
    "intrinsics_fov": (
        lambda t, a, tiny, d: _intrinsics(t, a, np.array([10.0, 10.0, 80.0, 50.0])),
        "--intrinsics: frame 0 horizontal FOV",
    ),
    "bad_action": (lambda t, a, tiny, d: _replace(a, "--action", "w-8,q-3"), "--action: segment 2 'q-3'"),
    "action_and_camera": (
        lambda t, a, tiny, d: [*a, "--camera", str(t / "c2w.npy")],
        "not allowed with argument",
    ),
    "bad_steps": (lambda t, a, tiny, d: _replace(a, "--steps", "0"), "--steps: must be"),
    "bad_size": (
        lambda t, a, tiny, d: _replace(a, "--height", "70"),
        "--height: must be a positive multiple of 32",
    ),
    "corrupt_checkpoint": (lambda t, a, tiny, d: _corrupt_checkpoint(t, a, d), "--model_path: cannot read"),
    "mismatched_checkpoint": (
        lambda t, a, tiny, d: _checkpoint_missing_a_key(t, a, d),
        "1 missing (blocks.2.attn.qkv.weight)",
    ),
    "mismatched_text_encoder": (
        lambda t, a, tiny, d: _narrow_text_encoder(t, a, tiny),
        "--text_encoder_path: text features are 32 wide, the transformer takes 64",
    ),
    "bad_device": (lambda t, a, tiny, d: _replace(a, "--device", "warp9"), "--device: "),
    "missing_local_vae": (
        lambda t, a, tiny, d: _replace(a, "--vae_path", str(t / "no_vae")),
        "--vae_path: no such file or folder: ",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path, capsys, tiny, tiny_dirs, case: str
) -> None:
    out_dir = tmp_path / "out"
    argv = ["generate", *_inputs(tmp_path, tiny), "--action", ACTION, *_settings(), *weight_args(tiny_dirs)]
    argv += ["--output_dir", str(out_dir), "--save_latents", "--quiet", "--no_refiner"]
    make_bad, message = BAD_INPUTS[case]
    assert _exit_code(make_bad(tmp_path, argv, tiny, tiny_dirs)) == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err
    assert not out_dir.exists()


def _exit_code(argv: list[str]) -> int:
    """main()'s return value, or the code argparse exits with for a usage error."""
    try:
        return main(argv)
    except SystemExit as exited:
        return int(exited.code)


def test_offline_without_weights_names_every_missing_file_and_its_flag(tmp_path, tiny) -> None:
    """HF_HUB_OFFLINE=1 and an empty HF_HOME: one line per missing file of both stages, exit 2, no output."""
    image = save_png(tmp_path / "first.png", tiny.image)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    env.pop("HF_HUB_CACHE", None)
    argv = [
        "generate",
        "--official",
        "--image",
        image,
        "--prompt_text",
        PROMPT,
        "--action",
        ACTION,
        "--num_frames",
        "17",
    ]
    argv += ["--output_dir", str(tmp_path / "out")]
    done = subprocess.run(
        [sys.executable, "-m", "sana_wm", *argv], env=env, capture_output=True, text=True, timeout=120
    )
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "out").exists()
    release = "Efficient-Large-Model/SANA-WM_bidirectional"
    expected = [
        f"missing dit/sana_wm_1600m_720p.safetensors from {release}",
        f"missing config.yaml from {release}",
        f"missing vae/ from {release}",
        "missing the weights from Efficient-Large-Model/gemma-2-2b-it",
        f"missing refiner/transformer/ from {release}",
        f"missing refiner/connectors/ from {release}",
        f"missing refiner/text_encoder/ from {release}",
    ]
    flags = [
        "pass --model_path FILE",
        "pass --config FILE",
        "pass --vae_path DIR",
        "pass --text_encoder_path DIR",
        "pass --refiner_checkpoint DIR",
        "pass --refiner_checkpoint DIR",
        "pass --refiner_gemma_root DIR",
    ]
    assert len(lines) == 7, done.stderr
    for line, what, how in zip(lines, expected, flags, strict=True):
        assert line.startswith(f"sana-wm generate: error: {what} (") and line.endswith(how), line
    assert json.dumps(lines).count("offline") == 7


def test_quiet_works_before_and_after_the_subcommand() -> None:
    from sana_wm.cli import build_parser

    base = ["--image", "a.png", "--prompt_text", "x", "--action", "w-8", "--output_dir", "out"]
    parser = build_parser()
    assert parser.parse_args(["--quiet", "generate", *base]).quiet is True
    assert parser.parse_args(["generate", *base, "--quiet"]).quiet is True
    assert parser.parse_args(["generate", *base]).quiet is False


def test_fastest_backend_is_torch_off_cuda() -> None:
    import torch

    from sana_wm.ops import fastest_backend

    assert fastest_backend(torch.device("cpu")) == "torch"


def test_triton_backend_without_cuda_is_one_line_before_loading(tmp_path, capsys) -> None:
    import triton  # noqa: F401  (the test extra installs it: a missing triton fails, not skips)

    argv = ["generate", "--backend", "triton", "--device", "cpu", "--output_dir", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "sana-wm generate: error: --backend triton: the kernels need a CUDA device (use auto or torch here)"
    ]
    assert not (tmp_path / "o").exists()
