"""Render -> mp4 + sidecars -> cache latents with a tiny VAE -> read back, all compared by number."""

import json
import zipfile

import numpy as np
import pytest
import torch

from sana_wm.camera import prepare_camera
from sana_wm.cli import main
from sana_wm.data import CameraTable, ZipLatentDataset
from sana_wm.data.latents import read_clip_video
from sana_wm.data.layout import write_json
from sana_wm.tiny import randomize_latent_stats, tiny_ltx2_vae
from sana_wm.utils.video_io import read_video
from sana_wm.worlds import ClipSettings, make_clip, render

H, W, F, SEED = 64, 96, 17, 3


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("worlds")
    argv = ["--quiet", "worlds", "render", "--num_clips", "3", "--frames", str(F), "--size", f"{H}x{W}"]
    assert main([*argv, "--out", str(root), "--seed", str(SEED), "--clips_per_shard", "2"]) == 0
    vae = randomize_latent_stats(tiny_ltx2_vae(8, seed=0), seed=1)
    vae.save_pretrained(root / "tiny_vae")
    argv = ["--quiet", "cache-latents", str(root), "--vae", str(root / "tiny_vae"), "--device", "cpu"]
    assert main(argv) == 0
    return root, vae


def test_render_writes_the_official_layout(dataset_dir) -> None:
    root, _ = dataset_dir
    raw = root / "raw"
    assert sorted(p.name for p in raw.iterdir()) == [
        "worlds_00000.zip",
        "worlds_00000_camera.npz",
        "worlds_00000_metric_scale_stats.json",
        "worlds_00001.zip",
        "worlds_00001_camera.npz",
        "worlds_00001_metric_scale_stats.json",
    ]
    settings = ClipSettings(num_frames=F, height=H, width=W, seed=SEED)
    with np.load(raw / "worlds_00000_camera.npz", allow_pickle=False) as npz:
        assert npz["ids"].tolist() == ["world_3_000000", "world_3_000001"]
        np.testing.assert_array_equal(npz["ranges"], [[0, F], [F, F]])
        assert npz["pose"].dtype == np.float32 and npz["pose"].shape == (2 * F, 4, 4)
        assert npz["intrinsics"].dtype == np.float32 and npz["intrinsics"].shape == (2 * F, 4)
    table = CameraTable.load(raw / "worlds_00001_camera.npz")
    clip = make_clip(settings, 2)
    c2w, intrinsics = table.get("world_3_000002")
    np.testing.assert_array_equal(c2w, clip.path.c2w_F44)
    np.testing.assert_array_equal(intrinsics, clip.path.intrinsics_F4)
    scales = json.loads((raw / "worlds_00001_metric_scale_stats.json").read_text())
    assert scales == {"world_3_000002": {"median": 1.0}}
    with zipfile.ZipFile(raw / "worlds_00001.zip") as archive:
        assert archive.namelist() == ["world_3_000002.json", "world_3_000002.mp4"]
        info = json.loads(archive.read("world_3_000002.json"))
    assert (info["prompt"], info["width"], info["height"], info["num_frames"]) == (clip.prompt, W, H, F)
    # The mp4 holds the rendered frames (H.264 at crf 18 with 4:2:0 chroma on a tiny textured frame: close,
    # not bit-exact), and clearly not another clip's.
    frames = read_clip_video(raw / "worlds_00001.zip", "world_3_000002.mp4").astype(int)
    assert frames.shape == (F, H, W, 3)
    error = np.abs(
        frames - render(clip.world, clip.path.c2w_F44, clip.path.intrinsics_F4, H, W).rgb_FHW3.numpy()
    )
    other = make_clip(settings, 1)
    other_error = np.abs(
        frames - render(other.world, other.path.c2w_F44, other.path.intrinsics_F4, H, W).rgb_FHW3.numpy()
    )
    assert error.mean() < 6.0 and np.median(error) <= 2
    assert other_error.mean() > 4 * error.mean()


def test_latents_equal_a_direct_vae_encode_of_the_mp4_frames(dataset_dir, tmp_path) -> None:
    root, vae = dataset_dir
    with zipfile.ZipFile(root / "raw" / "worlds_00000.zip") as archive:
        path = archive.extract("world_3_000001.mp4", tmp_path)
    frames, _ = read_video(path)
    video = torch.from_numpy(frames).float().permute(3, 0, 1, 2)[None] / 127.5 - 1.0
    with torch.no_grad():
        raw = vae.encode(video).latent_dist.mode()
    mean, std = vae.latents_mean.view(1, -1, 1, 1, 1), vae.latents_std.view(1, -1, 1, 1, 1)
    expected = ((raw - mean) * vae.config.scaling_factor / std)[0].numpy()
    with zipfile.ZipFile(root / "latents" / "worlds_00000.zip") as archive:
        assert archive.namelist() == ["world_3_000000.npz", "world_3_000001.npz"]
        with archive.open("world_3_000001.npz") as f, np.load(f) as npz:
            z = npz["z"]
    assert z.shape == (8, 3, 2, 3) and z.dtype == np.float32
    np.testing.assert_allclose(z, expected, atol=1e-5)


def test_reader_returns_latents_text_and_the_camera_module_tensors(dataset_dir) -> None:
    root, _ = dataset_dir
    dataset = ZipLatentDataset(root / "raw", root / "latents")
    assert [dataset.items[i]["key"] for i in range(len(dataset))] == [f"world_3_00000{i}" for i in range(3)]
    settings = ClipSettings(num_frames=F, height=H, width=W, seed=SEED)
    for index in range(3):
        sample = dataset[index]
        clip = make_clip(settings, index)
        shard = root / "latents" / f"worlds_0000{index // 2}.zip"
        with zipfile.ZipFile(shard) as archive, archive.open(f"{clip.key}.npz") as f, np.load(f) as npz:
            assert torch.equal(sample["latents"], torch.from_numpy(npz["z"]))
        assert sample["prompt"] == clip.prompt
        # 64 x 96 frames are exactly the 2 x 3 latent grid's canvas: prepare_camera on the known poses.
        conditions, plucker = prepare_camera(clip.path.c2w_F44, clip.path.intrinsics_F4, H, W)
        assert torch.equal(sample["camera_conditions"], conditions)
        assert torch.equal(sample["chunk_plucker"], plucker)
        assert sample["camera_conditions"].shape == (3, 20) and sample["chunk_plucker"].shape == (48, 3, 2, 3)
        assert sample["metric_scale"] == 1.0
        np.testing.assert_array_equal(sample["img_hw"], [H, W])


def test_metric_scale_multiplies_translations_before_relativisation(dataset_dir, tmp_path) -> None:
    root, _ = dataset_dir
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("worlds_00000.zip", "worlds_00000_camera.npz"):
        (raw / name).write_bytes((root / "raw" / name).read_bytes())
    write_json(raw / "worlds_00000_metric_scale_stats.json", {"world_3_000001": {"median": 2.5, "mean": 9.0}})
    dataset = ZipLatentDataset(raw, root / "latents")
    clip = make_clip(ClipSettings(num_frames=F, height=H, width=W, seed=SEED), 1)
    scaled = clip.path.c2w_F44.astype(np.float64)
    scaled[:, :3, 3] *= 2.5
    conditions, plucker = prepare_camera(scaled, clip.path.intrinsics_F4, H, W)
    sample = dataset[1]
    assert sample["metric_scale"] == 2.5
    assert torch.equal(sample["camera_conditions"], conditions)
    assert torch.equal(sample["chunk_plucker"], plucker)
    first = make_clip(ClipSettings(num_frames=F, height=H, width=W, seed=SEED), 0).path
    assert dataset[0]["metric_scale"] == 1.0  # clip 0 has no scale entry
    assert torch.equal(
        dataset[0]["camera_conditions"], prepare_camera(first.c2w_F44, first.intrinsics_F4, H, W)[0]
    )
    # Relative translations (entries 3, 7, 11 of each row) scale by exactly the factor; rotations do not.
    plain = prepare_camera(clip.path.c2w_F44, clip.path.intrinsics_F4, H, W)[0]
    np.testing.assert_allclose(conditions[:, [3, 7, 11]], 2.5 * plain[:, [3, 7, 11]], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(
        conditions[:, [0, 1, 2, 4, 5, 6, 8, 9, 10]], plain[:, [0, 1, 2, 4, 5, 6, 8, 9, 10]]
    )
    assert plain[:, [3, 7, 11]].abs().max() > 0.05


def test_cache_latents_keeps_finished_shards_unless_overwrite(dataset_dir) -> None:
    """--overwrite reaches the encoder (the flag was parsed and then dropped)."""
    root, _ = dataset_dir
    shard = root / "latents" / "worlds_00000.zip"
    before = shard.stat().st_mtime_ns
    argv = ["--quiet", "cache-latents", str(root), "--vae", str(root / "tiny_vae"), "--device", "cpu"]
    assert main(argv) == 0
    assert shard.stat().st_mtime_ns == before
    assert main([*argv, "--overwrite"]) == 0
    assert shard.stat().st_mtime_ns != before
