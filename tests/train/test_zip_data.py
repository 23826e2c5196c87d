"""Training reads the official latent-zip layout (``sana_wm.data``) end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import torch
from helpers.training import debug_config

from sana_wm.data import write_camera_sidecar
from sana_wm.data.layout import npz_bytes, write_zip
from sana_wm.train import Trainer, read_metrics, train
from sana_wm.train.dataset import build_dataset


def _write_shard(root, num_clips: int) -> None:
    """Raw zip (json), latent zip (npz z: 4 x 5 x 4 x 4) and camera sidecar of 33-frame 128x128 clips."""
    raw, latents = root / "raw", root / "latents"
    raw.mkdir()
    latents.mkdir()
    rng = np.random.default_rng(0)
    keys = [f"clip{i}" for i in range(num_clips)]
    info = {"prompt": "a test clip", "width": 128, "height": 128}
    write_zip(raw / "s.zip", [(f"{k}.json", json.dumps(info).encode()) for k in keys])
    z = [rng.standard_normal((4, 5, 4, 4)).astype(np.float32) for _ in keys]
    write_zip(latents / "s.zip", [(f"{k}.npz", npz_bytes(z=zk)) for k, zk in zip(keys, z, strict=True)])
    c2w = np.repeat(np.eye(4, dtype=np.float32)[None], 33, axis=0)
    c2w[:, 2, 3] = np.linspace(0, 1, 33)
    intrinsics = np.tile(np.float32([64, 64, 64, 64]), (33, 1))
    write_camera_sidecar(raw / "s_camera.npz", keys, [c2w] * num_clips, [intrinsics] * num_clips)


def test_trains_on_the_zip_layout(tmp_path):
    _write_shard(tmp_path, 4)
    cfg = debug_config(
        tmp_path,
        "data.kind=zip",
        f"data.raw_dir={tmp_path / 'raw'}",
        "data.text_encoder=none",
        "data.text_max_length=6",
        "max_steps=3",
        "checkpoint.every=0",
    )
    dataset = build_dataset(cfg.data, channels=4, caption_channels=8, seed=0)
    assert len(dataset) == 4 and dataset[0]["latents"].shape == (4, 5, 4, 4)
    train(cfg)
    losses = [r["loss"] for r in read_metrics(cfg.out_dir)]
    assert len(losses) == 3 and all(math.isfinite(v) and v > 0 for v in losses)


class _FakeEncoder:
    """Stands in for Gemma: features = prompt length, every token real; records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bool, int]] = []

    def encode(self, prompts, *, use_chi_prompt: bool, max_length: int):
        self.calls.append((list(prompts), use_chi_prompt, max_length))
        text = torch.stack([torch.full((max_length, 8), float(len(p))) for p in prompts])
        return text, torch.ones(len(prompts), max_length, dtype=torch.int64)


def test_prompts_and_the_empty_prompt_null_caption_go_through_the_text_encoder(tmp_path, monkeypatch):
    _write_shard(tmp_path, 2)
    cfg = debug_config(
        tmp_path,
        "data.kind=zip",
        f"data.raw_dir={tmp_path / 'raw'}",
        "data.text_max_length=5",
        "loss.null_caption=empty_prompt",
        "global_batch_size=1",
        "max_steps=2",
        "checkpoint.every=0",
    )
    fake = _FakeEncoder()
    monkeypatch.setattr(Trainer, "_encoder", lambda self, device: fake)
    train(cfg)
    # one encoding of the clip prompt per step, plus the null caption once: the empty prompt, chi prefix on
    assert sorted(fake.calls) == [([""], True, 5), (["a test clip"], True, 5), (["a test clip"], True, 5)]
