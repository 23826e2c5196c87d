"""The reader on hand-made shards laid out like the official example dataset (json-only raw zips, 1080p
intrinsics, latents on a 22 x 40 grid), checked against the official recipe computed by hand."""

import json
import zipfile

import numpy as np
import pytest
import torch

from sana_wm.data import ZipLatentDataset, write_camera_sidecar
from sana_wm.data.layout import npz_bytes, numeric_score, write_json, write_zip
from sana_wm.worlds.paths import yaw_pitch_to_rotation


def _poses(rng: np.random.Generator, n: int) -> np.ndarray:
    c2w = np.zeros((n, 4, 4))
    c2w[:, :3, :3] = yaw_pitch_to_rotation(rng.uniform(-3, 3, n), rng.uniform(-0.5, 0.5, n))
    c2w[:, :3, 3] = rng.normal(size=(n, 3))
    c2w[:, 3, 3] = 1.0
    return c2w.astype(np.float32)


def _shard(raw, cache, stem, clips, *, cameras=None, scales=None) -> None:
    """clips: {key: (info dict, z array)}; cameras: {key: (c2w, intrinsics)}."""
    raw.mkdir(exist_ok=True)
    cache.mkdir(exist_ok=True)
    write_zip(
        raw / f"{stem}.zip", [(f"{k}.json", json.dumps(info).encode()) for k, (info, _) in clips.items()]
    )
    write_zip(cache / f"{stem}.zip", [(f"{k}.npz", npz_bytes(z=z)) for k, (_, z) in clips.items()])
    if cameras:
        keys = list(cameras)
        write_camera_sidecar(
            raw / f"{stem}_camera.npz", keys, [cameras[k][0] for k in keys], [cameras[k][1] for k in keys]
        )
    if scales is not None:
        write_json(raw / f"{stem}_metric_scale_stats.json", scales)


def _official_reference(c2w, intrinsics, scale, width, height, latent_thw):
    """The official recipe written out by hand (float64): camera_conditions and chunk_plucker."""
    t, h, w = latent_thw
    poses = c2w.astype(np.float64)
    poses[:, :3, 3] *= scale
    rel = np.linalg.inv(poses[0]) @ poses
    rel[0] = np.eye(4)
    k = intrinsics.astype(np.float64) * [w / width, h / height, w / width, h / height]
    samples = np.arange(0, len(poses), 8)[:t]
    samples = np.concatenate([samples, np.repeat(samples[-1:], t - len(samples))])
    conditions = np.concatenate([rel[samples].reshape(-1, 16), k[samples]], axis=1)
    plucker = np.zeros((48, t, h, w))
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    for col, sample in enumerate(samples):
        start = max(0, sample - 7)
        for j in range(8):
            frame = min(start + j, len(poses) - 1)
            fx, fy, cx, cy = k[frame]
            d = (
                np.stack([(xs - cx) / fx, (ys - cy) / fy, np.ones_like(xs, dtype=float)], -1)
                @ rel[frame, :3, :3].T
            )
            d /= np.linalg.norm(d, axis=-1, keepdims=True)
            m = np.cross(np.broadcast_to(rel[frame, :3, 3], d.shape), d)
            plucker[6 * j : 6 * j + 6, col] = np.concatenate([d, m], -1).transpose(2, 0, 1)
    return conditions, plucker


@pytest.mark.parametrize(
    ("num_poses", "latent_t"),
    [(17, 3), (17, 5), (41, 3), (5, 2)],
    ids=["exact", "fewer_poses_than_latents", "more_poses", "short_first_window"],
)
def test_camera_tensors_follow_the_official_recipe(tmp_path, num_poses, latent_t) -> None:
    rng = np.random.default_rng(num_poses + latent_t)
    c2w = _poses(rng, num_poses)
    intrinsics = np.tile([1400.0, 1390.0, 960.0, 540.0], (num_poses, 1)).astype(np.float32)
    intrinsics += rng.uniform(-20, 20, intrinsics.shape).astype(np.float32)
    z = rng.normal(size=(4, latent_t, 22, 40)).astype(np.float32)
    info = {"prompt": "a street", "width": 1920, "height": 1080}
    _shard(
        tmp_path / "raw",
        tmp_path / "cache",
        "part0",
        {"clip": (info, z)},
        cameras={"clip": (c2w, intrinsics)},
        scales=[{"key": "clip", "median": 0.37}],  # a list of records is accepted too
    )
    sample = ZipLatentDataset(tmp_path / "raw", tmp_path / "cache")[0]
    conditions, plucker = _official_reference(c2w, intrinsics, 0.37, 1920, 1080, (latent_t, 22, 40))
    np.testing.assert_array_equal(sample["latents"].numpy(), z)
    assert sample["prompt"] == "a street" and sample["metric_scale"] == pytest.approx(0.37)
    np.testing.assert_allclose(sample["camera_conditions"].numpy(), conditions, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(sample["chunk_plucker"].numpy(), plucker, rtol=1e-5, atol=2e-5)


def test_clip_without_camera_gets_identity_and_the_fallback_intrinsics(tmp_path) -> None:
    z = np.zeros((4, 3, 22, 40), np.float32)
    _shard(tmp_path / "raw", tmp_path / "cache", "a", {"k": ({"prompt": "p", "width": 64, "height": 64}, z)})
    sample = ZipLatentDataset(tmp_path / "raw", tmp_path / "cache")[0]
    expected = np.concatenate([np.tile(np.eye(4).ravel(), (3, 1)), np.tile([40, 22, 20, 11], (3, 1))], axis=1)
    np.testing.assert_array_equal(sample["camera_conditions"].numpy(), expected)
    # Identity cameras: moments vanish and every latent / window frame sees the same directions.
    plucker = sample["chunk_plucker"].numpy().reshape(8, 6, 3, 22, 40)
    assert np.abs(plucker[:, 3:]).max() == 0.0
    assert np.abs(plucker - plucker[:1, :, :1]).max() == 0.0
    np.testing.assert_allclose(plucker[0, :3, 0, 11, 20], [0.0, 0.0, 1.0], atol=1e-7)


def test_the_official_unit_example(tmp_path) -> None:
    # Two poses, 1 unit apart along x, metric scale 2 (a "median" record), time stride 1: translation 2.
    poses = np.repeat(np.eye(4, dtype=np.float32)[None], 2, axis=0)
    poses[1, 0, 3] = 1.0
    intrinsics = np.array([[64, 64, 32, 32], [64, 64, 32, 32]], np.float32)
    _shard(
        tmp_path / "raw",
        tmp_path / "cache",
        "sample",
        {"clip_000": ({"prompt": "clip_000", "height": 64, "width": 64}, np.zeros((1, 2, 2, 2), np.float32))},
        cameras={"clip_000": (poses, intrinsics)},
        scales={"clip_000": {"median": 2.0}},
    )
    sample = ZipLatentDataset(tmp_path / "raw", tmp_path / "cache", vae_stride=(1, 32, 32))[0]
    assert sample["camera_conditions"].shape == (2, 20)
    assert sample["camera_conditions"][1, 3].item() == 2.0
    np.testing.assert_array_equal(sample["camera_conditions"][1, 16:], [2.0, 2.0, 1.0, 1.0])


def test_listing_filters_captions_sizes_repeat_and_max_frames(tmp_path) -> None:
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    z = np.arange(4 * 5 * 1 * 2, dtype=np.float32).reshape(4, 5, 1, 2)
    clips = {k: ({"prompt": f"prompt {k}", "width": 64, "height": 32}, z) for k in ("b", "a", "c", "d")}
    _shard(raw, cache, "s1", clips)
    _shard(raw, cache, "s0", {"e": ({"prompt": "prompt e", "width": 64, "height": 32}, z[:, :1])})
    (raw / "s2.zip").write_bytes((raw / "s0.zip").read_bytes())  # no latent shard: ignored
    (raw / "s1_vmafmotion.json").write_text(
        json.dumps({"a": {"vmafmotion_score": 1.0}, "b": 0.1, "c": [2, 4]})
    )
    (raw / "s0_vmafmotion.jsonl").write_text(json.dumps({"key": "e", "score": 40}) + "\n")
    (raw / "s1_Caption.json").write_text(json.dumps({"a": {"prompt": "long caption a"}, "c": "long c"}))

    everything = ZipLatentDataset(raw, cache)
    assert [item["key"] for item in everything.items] == ["e", "b", "a", "c", "d"]  # sorted shards, zip order
    filtered = ZipLatentDataset(
        raw,
        cache,
        filters={"_vmafmotion": (0.5, 50.0)},
        caption_weights={"_Caption": 1.0},
        caption_suffixes=["_Caption"],
        repeat=2,
    )
    assert [item["key"] for item in filtered.items] == ["e", "a", "c"] * 2  # b too low, d has no score
    assert [filtered[i]["prompt"] for i in range(3)] == ["prompt e", "long caption a", "long c"]
    assert filtered[1]["caption_type"] == "_Caption" and filtered[0]["caption_type"] == "prompt"
    big = ZipLatentDataset(raw, cache, min_latent_bytes=len(npz_bytes(z=z)))
    assert [item["key"] for item in big.items] == ["b", "a", "c", "d"]  # e's latent is smaller
    short = ZipLatentDataset(raw, cache, max_frames=17)
    assert short[1]["latents"].shape == (4, 3, 1, 2)
    np.testing.assert_array_equal(short[1]["latents"].numpy(), z[:, :3])
    assert short[1]["camera_conditions"].shape == (3, 20)
    assert numeric_score({"other": [1, 3], "median": "x"}) == 2.0
    assert numeric_score({"dover_score": 0.3, "score": None, "median": 4}) == 0.3


def test_mixed_caption_choice_is_seeded_and_weighted(tmp_path) -> None:
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    z = np.zeros((1, 1, 1, 1), np.float32)
    clips = {f"k{i}": ({"prompt": "short", "long": "long", "width": 8, "height": 8}, z) for i in range(100)}
    _shard(raw, cache, "s", clips)
    weights = {"prompt": 1.0, "long": 3.0}

    def captions(seed: int) -> list[str]:
        dataset = ZipLatentDataset(raw, cache, caption_weights=weights, seed=seed)
        return [dataset[i]["prompt"] for i in range(len(dataset))]

    first = captions(1)
    assert first == captions(1) and first != captions(2)
    assert 0.6 < first.count("long") / 100 < 0.9


def test_dataloader_batches_samples(tmp_path) -> None:
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    z = np.ones((2, 2, 1, 1), np.float32)
    _shard(
        raw, cache, "s", {f"k{i}": ({"prompt": f"p{i}", "width": 32, "height": 32}, z * i) for i in range(4)}
    )
    dataset = ZipLatentDataset(raw, cache)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, shuffle=False)
    batch = next(iter(loader))
    assert batch["prompt"] == ["p0", "p1"]
    assert batch["latents"].shape == (2, 2, 2, 1, 1) and batch["latents"][1].eq(1).all()
    assert batch["camera_conditions"].shape == (2, 2, 20)
    with zipfile.ZipFile(raw / "s.zip") as archive:
        assert archive.namelist() == ["k0.json", "k1.json", "k2.json", "k3.json"]
