from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sana_wm.camera import action_to_c2w
from sana_wm.cli import main
from sana_wm.inference import CameraPath, GenerationRequest
from sana_wm.utils.video_io import probe_video, read_sidecar, read_video


def test_trajectory_writes_the_rollout_and_a_plot(tmp_path) -> None:
    out, png = tmp_path / "c2w.npy", tmp_path / "c2w.png"
    argv = ["trajectory", "--action", "w-80,jw-40,w-40,lw-60,w-100", "--translation-speed", "0.055"]
    assert main([*argv, "--rotation_speed_deg", "1.2", "--out", str(out), "--plot", str(png)]) == 0
    c2w = np.load(out)
    assert c2w.dtype == np.float32 and c2w.shape == (321, 4, 4)
    np.testing.assert_array_equal(c2w, action_to_c2w("w-80,jw-40,w-40,lw-60,w-100", translation_speed=0.055))
    # 320 frames at 0.055 m per frame, all on the ground plane.
    travelled = np.linalg.norm(np.diff(c2w[:, :3, 3], axis=0), axis=1).sum()
    assert np.isclose(travelled, 320 * 0.055, rtol=1e-4)
    assert np.abs(c2w[:, 1, 3]).max() == 0.0
    assert Image.open(png).size == (1200, 600)


def test_trajectory_v2_mapping_turns_with_d(tmp_path) -> None:
    out = tmp_path / "c2w.npy"
    assert main(["trajectory", "--action", "d-100", "--action-mapping", "v2", "--out", str(out)]) == 0
    c2w = np.load(out)
    yaw_deg = np.degrees(np.arctan2(c2w[-1, 0, 2], c2w[-1, 2, 2]))
    assert np.isclose(yaw_deg, 100 * 0.6, atol=1e-3)  # snap to full speed on the first frame, no translation
    assert np.abs(c2w[:, :3, 3]).max() == 0.0


def test_trajectory_round_trips_a_camera_file(tmp_path) -> None:
    src, out = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(src, action_to_c2w("w-5,l-5,i-3").astype(np.float64))
    assert main(["trajectory", "--camera", str(src), "--out", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out), np.load(src).astype(np.float32))


def test_overlay_demo_writes_video_and_sidecar(tmp_path) -> None:
    out = tmp_path / "v.mp4"
    argv = ["--quiet", "overlay-demo", "--action", "w-10,a-10,l-10", "--num_frames", "23", "--fps", "12"]
    assert main([*argv, "--height", "96", "--width", "160", "--out", str(out)]) == 0
    # 23 is snapped to the nearest 8k+1 (ties up, capped by the 31-pose path): 25.
    assert probe_video(out) == {"frames": 25, "height": 96, "width": 160, "fps": 12.0}
    side = read_sidecar(out.with_suffix(".json"))
    np.testing.assert_array_equal(side.c2w, action_to_c2w("w-10,a-10,l-10")[:25])
    assert side.settings["action"] == "w-10,a-10,l-10" and side.settings["action_overlay"] is True
    # The HUD sits bottom-left: with it, that corner differs from the same video without it; the top does not.
    plain = tmp_path / "plain.mp4"
    argv = [*argv, "--height", "96", "--width", "160", "--no_action_overlay", "--out", str(plain)]
    assert main(argv) == 0
    a, _ = read_video(out)
    b, _ = read_video(plain)
    corner = (slice(None), slice(48, 96), slice(0, 80))
    assert np.abs(a[corner].astype(int) - b[corner]).mean() > 10
    assert np.abs(a[:, :30].astype(int) - b[:, :30]).mean() < 2


def test_demo_runs_the_demo_model_and_matches_the_pipeline(tmp_path, tiny_demo_dir) -> None:
    """`sana-wm demo` = the demo pipeline on the bundled first frame along the model's default action."""
    from sana_wm.inference.demo_model import demo_first_frame, load_demo_pipeline, read_demo_settings

    out = tmp_path / "demo"
    assert main(["--quiet", "demo", "--demo_dir", str(tiny_demo_dir), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "demo.json",
        "demo.mp4",
        "trajectory.npy",
        "trajectory.png",
    ]
    settings = read_demo_settings(tiny_demo_dir)
    sidecar = read_sidecar(out / "demo.json")
    assert sidecar.settings["model"] == "demo" and sidecar.settings["refiner"] is False
    assert sidecar.settings["action"] == settings.action and len(sidecar.c2w) == settings.num_frames
    np.testing.assert_allclose(sidecar.c2w, action_to_c2w(settings.action)[: settings.num_frames], atol=1e-6)
    np.testing.assert_array_equal(np.load(out / "trajectory.npy"), sidecar.c2w)

    pipe = load_demo_pipeline("cpu", directory=tiny_demo_dir)
    request = GenerationRequest(
        image=demo_first_frame(tiny_demo_dir),
        prompt="",
        camera=CameraPath.from_action(settings.action, intrinsics=settings.intrinsics_array()),
        sampling=settings.sampling(seed=42),
    )
    want = pipe(request, progress=False).frames.numpy()
    plain = tmp_path / "plain"
    argv = ["--quiet", "generate", "--demo_dir", str(tiny_demo_dir), "--output_dir", str(plain)]
    assert main([*argv, "--no_action_overlay"]) == 0
    got, _ = read_video(plain / "output.mp4")
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 3.0  # H.264 round trip only


def test_generate_demo_with_an_image_and_a_prompt_says_what_the_model_is(
    tmp_path, tiny_demo_dir, caplog
) -> None:
    import logging

    from sana_wm.inference.demo_model import PROMPT_NOTE, SYNTHETIC_NOTE

    image = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 200, 3), dtype=np.uint8)).save(image)
    argv = ["generate", "--demo_dir", str(tiny_demo_dir), "--image", str(image), "--prompt_text", "a red car"]
    with caplog.at_level(logging.WARNING, logger="sana_wm"):
        assert main([*argv, "--action", "w-8", "--output_dir", str(tmp_path / "o")]) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert SYNTHETIC_NOTE in messages and PROMPT_NOTE in messages
    assert probe_video(tmp_path / "o" / "output.mp4")["frames"] == 9


def test_generate_release_needs_image_prompt_and_path(tmp_path, capsys) -> None:
    argv = ["generate", "--official", "--output_dir", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--image: required for the released model" in err[0]
    assert main(["generate", "--demo_dir", str(tmp_path), "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no complete demo model" in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", ["generate", "stream"])
def test_the_sidecar_records_quantize_and_lora(tmp_path, tiny_demo_dir, command) -> None:
    out = tmp_path / command
    argv = [
        "--quiet",
        command,
        "--demo_dir",
        str(tiny_demo_dir),
        "--output_dir",
        str(out),
        "--quantize",
        "fp8",
    ]
    assert main([*argv, "--action", "w-24", "--num_frames", "25"]) == 0
    settings = read_sidecar(out / "output.json").settings
    assert (settings["quantize"], settings["lora"], settings["lora_scale"]) == ("fp8", None, None)
