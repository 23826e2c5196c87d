"""Bad input to generate / demo: one line naming the flag the user typed, exit 2, no file written, and no
model loaded (every case here is refused before loading: the bundled demo model is never touched)."""

from __future__ import annotations

from unittest import mock

import pytest
import torch

from sana_wm.cli import main


@pytest.fixture
def no_loading():
    with mock.patch("sana_wm.inference.run.load", side_effect=AssertionError("a model was loaded")):
        yield


CASES = [
    (["--action", "w-4"], "--action: the camera path has 5 poses; a video needs at least 9"),
    (["--num_frames", "0"], "--num_frames: must be a whole number in [9, 100000], got 0"),
    (["--num_frames", "-7"], "--num_frames: must be a whole number in [9, 100000], got -7"),
    (["--seed", "-1"], "--seed: must be a whole number in [0, "),
    (["--seed", str(2**64)], "--seed: must be a whole number in [0, "),
    (["--steps", str(10**12)], "--steps: must be a whole number in [1, 10000]"),
    (["--device", "mps"], "--device: mps is not supported (use cpu or cuda)"),
    (["--device", "meta"], "--device: meta is not supported (use cpu or cuda)"),
    (
        ["--translation_speed", "1e308"],
        "--translation_speed: must be a finite number in [0, 100], got 1e+308",
    ),
    (["--action", "w-" + "9" * 5000], "has a duration of 5000 digits"),
    (["--name", "x" * 300], "--name:"),
    (["--height", "100000"], "--height: must be a positive multiple of 32 up to 8192"),
]


@pytest.mark.parametrize(
    ("extra", "message"), CASES, ids=[c[1].split(":")[0] + str(i) for i, c in enumerate(CASES)]
)
def test_generate_refuses_before_any_work(tmp_path, capsys, no_loading, extra, message) -> None:
    out = tmp_path / "out"
    assert main(["generate", "--output_dir", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_output_folders_that_cannot_be_used_are_named_by_the_flag_typed(tmp_path, capsys, no_loading) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["generate", "--output_dir", str(blocker)]) == 2
    assert f"--output_dir: {blocker} exists and is not a folder" in capsys.readouterr().err
    assert main(["generate", "--output_dir", str(blocker / "sub")]) == 2
    assert f"--output_dir: {blocker} is a file" in capsys.readouterr().err
    assert main(["demo", "--out", str(blocker)]) == 2
    assert f"--out: {blocker} exists and is not a folder" in capsys.readouterr().err
    assert blocker.read_text() == ""


def test_demo_passes_an_image_name_starting_with_a_dash_through(tmp_path, capsys, no_loading) -> None:
    """demo no longer re-parses its own arguments: the image is reported missing, with no usage dump."""
    assert main(["demo", "--image=-first.png", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--image" in err and "-first.png" in err


def test_a_failed_command_leaves_no_file(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["trajectory", "--action", "w-8", "--out", "p.npy", "--plot", "p.txt"]) == 2
    assert "--plot: expected a .png path, got 'p.txt'" in capsys.readouterr().err
    assert main(["overlay-demo", "--action", "w-8", "--num_frames", "0", "--out", "o.mp4"]) == 2
    assert "--num_frames: must be >= 1, got 0" in capsys.readouterr().err
    assert main(["overlay-demo", "--action", "w-8", "--height", "100000", "--out", "o.mp4"]) == 2
    assert "--height: must be an even number of pixels from 16 to 8192" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_worlds_render_refuses_bad_settings_before_writing_anything(tmp_path, capsys) -> None:
    out = tmp_path / "w"
    argv = ["worlds", "render", "--num_clips", "1", "--frames", "9", "--size", "32x32", "--out", str(out)]
    assert main([*argv, "--fps", "0"]) == 2
    assert "--fps: must be a positive number, got 0.0" in capsys.readouterr().err
    assert not out.exists()  # no settings file that would refuse the corrected rerun
    assert main([*argv, "--device", "cuda:7" if torch.cuda.is_available() else "cuda"]) == 2
    assert "--device" in capsys.readouterr().err and not out.exists()
    assert main(argv) == 0


def test_inputs_that_claim_more_than_they_hold_are_refused_before_allocating(tmp_path, capsys) -> None:
    import io

    import numpy as np

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 4, 4)}
    )
    (tmp_path / "huge.npy").write_bytes(header.getvalue())
    assert main(["trajectory", "--camera", str(tmp_path / "huge.npy"), "--out", str(tmp_path / "o.npy")]) == 2
    assert "claims shape (1000000000, 4, 4)" in capsys.readouterr().err
    (tmp_path / "prompt.txt").write_bytes(b"a" * 2_000_000)
    from PIL import Image

    Image.new("RGB", (64, 48)).save(tmp_path / "x.png")
    argv = [
        "generate",
        "--official",
        "--image",
        str(tmp_path / "x.png"),
        "--prompt",
        str(tmp_path / "prompt.txt"),
    ]
    assert main([*argv, "--action", "w-8", "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is 2000000 bytes; a prompt file may hold at most 1000000" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.npy", "prompt.txt", "x.png"]


def test_a_full_disk_and_ctrl_c_during_imports_are_one_line(tmp_path, capsys) -> None:
    import errno

    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "o.npy"))
    with mock.patch("sana_wm.viz.trajectory_plot.save_trajectory", side_effect=full):
        assert main(["trajectory", "--action", "w-8", "--out", str(tmp_path / "o.npy")]) == 1
    err = capsys.readouterr().err
    assert (
        err == f"sana-wm trajectory: error: no space left on the device writing {tmp_path / 'o.npy'}; "
        "nothing partial was kept\n"
    )
    with mock.patch("importlib.import_module", side_effect=KeyboardInterrupt):
        assert main(["trajectory", "--action", "w-8", "--out", "o.npy"]) == 130
    assert capsys.readouterr().err == "sana-wm: interrupted\n"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("demo_model.json", "demo_model.json is not valid JSON"),
        ("vae/config.json", "config.json' is not a valid JSON file"),
        ("vae/diffusion_pytorch_model.safetensors", "Unable to load weights"),
        ("transformer.safetensors", "as safetensors"),
    ],
)
def test_a_damaged_demo_folder_is_one_line(tmp_path, capsys, tiny_demo_dir, damage, message) -> None:
    import shutil

    folder = tmp_path / "demo"
    shutil.copytree(tiny_demo_dir, folder)
    target = folder / damage
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2] if damage.endswith(".safetensors") else b"{torn")
    assert main(["--quiet", "generate", "--demo_dir", str(folder), "--output_dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self"), reason="needs /proc")
def test_an_output_folder_where_nothing_can_be_created_is_refused_before_any_work(capsys, no_loading) -> None:
    assert main(["generate", "--output_dir", "/proc/sana_wm_out"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--output_dir: cannot create files in /proc" in err
