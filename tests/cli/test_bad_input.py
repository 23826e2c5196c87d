"""Every malformed input: one line on stderr naming the input, exit code 2, no traceback, no output file."""

from __future__ import annotations

import numpy as np
import pytest

from sana_wm.cli import main


def _rigid(num: int) -> np.ndarray:
    c2w = np.repeat(np.eye(4, dtype=np.float32)[None], num, axis=0)
    c2w[:, 2, 3] = np.arange(num) * 0.1
    return c2w


def _npy(tmp_path, name: str, array: np.ndarray) -> str:
    path = tmp_path / name
    np.save(path, array)
    return str(path)


def _nan_pose(tmp_path) -> str:
    c2w = _rigid(9)
    c2w[4, 0, 3] = np.nan
    return _npy(tmp_path, "nan.npy", c2w)


def _inf_pose(tmp_path) -> str:
    c2w = _rigid(9)
    c2w[2, 1, 1] = np.inf
    return _npy(tmp_path, "inf.npy", c2w)


def _scaled_pose(tmp_path) -> str:
    c2w = _rigid(9)
    c2w[3, :3, :3] *= 1.05
    return _npy(tmp_path, "scaled.npy", c2w)


ACTION_CASES = [
    ("w80", "--action: segment 1 'w80' has no '-'"),
    ("w-80,jw40", "--action: segment 2 'jw40' has no '-'"),
    ("w-8x", "--action: segment 1 'w-8x' has duration '8x'"),
    ("w-0", "--action: segment 1 'w-0' has duration 0"),
    ("w-5,q-5", "--action: segment 2 'q-5' has unknown key(s) 'q'"),
    ("", "--action: the action string is empty"),
    ("w-5,,w-5", "--action: segment 2 '' is empty"),
]


@pytest.mark.parametrize(("action", "message"), ACTION_CASES)
def test_bad_action(tmp_path, capsys, action: str, message: str) -> None:
    out = tmp_path / "c2w.npy"
    assert main(["trajectory", "--action", action, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


CAMERA_CASES = [
    (lambda p: _npy(p, "shape.npy", np.zeros((5, 3, 4), np.float32)), "expected an array of shape (F, 4, 4)"),
    (lambda p: _npy(p, "flat.npy", np.zeros(16, np.float32)), "expected an array of shape (F, 4, 4)"),
    (_nan_pose, "frame 4 contains NaN or infinity"),
    (_inf_pose, "frame 2 contains NaN or infinity"),
    (_scaled_pose, "frame 3 rotation is not rigid"),
    (lambda p: str(p / "missing.npy"), "--camera"),
    (lambda p: (p / "text.npy").write_text("not numpy") and str(p / "text.npy"), "--camera"),
]


@pytest.mark.parametrize(("make", "message"), CAMERA_CASES)
def test_bad_camera_file(tmp_path, capsys, make, message: str) -> None:
    src = tmp_path / "in"
    src.mkdir()
    camera = make(src)
    out = tmp_path / "out"
    assert (
        main(["trajectory", "--camera", camera, "--out", str(out / "c2w.npy"), "--plot", str(out / "p.png")])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("sana-wm trajectory: error: --camera")
    assert not out.exists()


INTRINSICS_CASES = [
    (np.zeros((2, 5), np.float32), "--intrinsics"),
    (np.array([0.0, 100.0, 40.0, 24.0], np.float32), "--intrinsics"),
    (np.array([-50.0, 50.0, 40.0, 24.0], np.float32), "--intrinsics"),
    (np.array([10.0, 10.0, 40.0, 24.0], np.float32), "outside 25-120 deg"),
    (np.array([np.nan, 50.0, 40.0, 24.0], np.float32), "--intrinsics"),
]


@pytest.mark.parametrize(("intrinsics", "message"), INTRINSICS_CASES)
def test_bad_intrinsics(tmp_path, capsys, intrinsics: np.ndarray, message: str) -> None:
    path = _npy(tmp_path, "k.npy", intrinsics)
    out = tmp_path / "v.mp4"
    argv = ["overlay-demo", "--action", "w-8", "--height", "48", "--width", "80", "--intrinsics", path]
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out.exists() and not out.with_suffix(".json").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["trajectory", "--action", "w-5", "--camera", "x.npy", "--out", "o.npy"],
            "not allowed with argument",
        ),
        (["trajectory", "--action", "w-5"], "the following arguments are required: --out"),
        (
            ["trajectory", "--action", "w-5", "--action_mapping", "v3", "--out", "o.npy"],
            "invalid choice: 'v3'",
        ),
        (
            ["trajectory", "--action", "w-5", "--translation_speed", "-1", "--out", "o.npy"],
            "--translation_speed",
        ),
        (
            ["trajectory", "--action", "w-5", "--rotation_speed_deg", "nan", "--out", "o.npy"],
            "--rotation_speed_deg",
        ),
        (["overlay-demo", "--action", "w-8", "--height", "47"], "--height: must be an even number"),
    ],
)
def test_bad_flags(tmp_path, monkeypatch, capsys, argv: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert list(tmp_path.rglob("*.*")) == []
