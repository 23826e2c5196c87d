import zipfile

import numpy as np

from sana_wm.cli import main
from sana_wm.data import CameraTable
from sana_wm.tiny import tiny_ltx2_vae
from sana_wm.worlds import ClipSettings, make_clip

ARGS = ["--quiet", "worlds", "render", "--frames", "9", "--size", "64x96", "--clips_per_shard", "2"]


def _keys(raw_zip) -> list[str]:
    with zipfile.ZipFile(raw_zip) as archive:
        return [n[:-5] for n in archive.namelist() if n.endswith(".json")]


def test_render_resumes_grows_and_refuses_other_settings(tmp_path, capsys) -> None:
    out = tmp_path / "ds"
    assert main([*ARGS, "--num_clips", "3", "--out", str(out), "--mapping", "v2"]) == 0
    first = out / "raw" / "worlds_00000.zip"
    stamp = first.stat().st_mtime_ns
    assert _keys(out / "raw" / "worlds_00001.zip") == ["world_0_000002"]
    # More clips later: the complete shard is kept, the short one re-rendered, a new one added.
    assert main([*ARGS, "--num_clips", "5", "--out", str(out), "--mapping", "v2"]) == 0
    assert first.stat().st_mtime_ns == stamp
    assert _keys(out / "raw" / "worlds_00001.zip") == ["world_0_000002", "world_0_000003"]
    assert _keys(out / "raw" / "worlds_00002.zip") == ["world_0_000004"]
    table = CameraTable.load(out / "raw" / "worlds_00001_camera.npz")
    clip = make_clip(ClipSettings(num_frames=9, height=64, width=96, mapping="v2"), 3)
    np.testing.assert_array_equal(table.get("world_0_000003")[0], clip.path.c2w_F44)
    assert clip.path.mapping in (None, "v2")
    capsys.readouterr()
    assert main([*ARGS, "--num_clips", "5", "--out", str(out), "--mapping", "v1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out:" in err and "mapping" in err


def test_bad_render_arguments_are_one_line_errors(tmp_path, capsys) -> None:
    for extra, flag in (
        (["--frames", "12"], "--frames:"),
        (["--size", "64by96"], "--size:"),
        (["--size", "63x96"], "--size:"),
        (["--num_clips", "0"], "--num_clips:"),
    ):
        argv = [*ARGS, "--num_clips", "1", "--out", str(tmp_path / "bad"), *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and flag in err
        assert not (tmp_path / "bad" / "raw").exists()


def test_cache_latents_names_the_clip_that_the_vae_cannot_take(tmp_path, capsys) -> None:
    out = tmp_path / "ds"
    argv = ["--quiet", "worlds", "render", "--num_clips", "1", "--frames", "9", "--size", "48x64"]
    assert main([*argv, "--out", str(out)]) == 0
    tiny_ltx2_vae(8, seed=0).save_pretrained(tmp_path / "vae")
    capsys.readouterr()
    assert main(["cache-latents", str(out), "--vae", str(tmp_path / "vae"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "world_0_000000.mp4" in err and "multiples of 32" in err
    assert not (out / "latents" / "worlds_00000.zip").exists()
    assert main(["cache-latents", str(tmp_path / "nowhere"), "--vae", str(tmp_path / "vae")]) == 2
