"""Tiny CPU run used by the tests: a two-block model (one GDN, one softmax block) on random clips.

Run it with ``sana-wm train run --recipe recipes/debug.py`` (a few seconds on a laptop CPU).
"""

from sana_wm.models import SanaWMConfig
from sana_wm.train.checkpoint import CheckpointConfig
from sana_wm.train.config import RunConfig
from sana_wm.train.dataset import DataConfig
from sana_wm.train.ema import EMAConfig
from sana_wm.train.losses import LossConfig
from sana_wm.train.metrics import MetricsConfig
from sana_wm.train.optim import OptimConfig


def debug_model() -> SanaWMConfig:
    """Width 32, two blocks (block 1 softmax), 4 latent channels, 8 caption channels: ~70 k parameters."""
    return SanaWMConfig(
        in_channels=4,
        hidden_size=32,
        depth=2,
        head_dim=16,
        cross_attn_heads=2,
        caption_channels=8,
        mlp_ratio=2.0,
        softmax_every_n=2,
        plucker_blocks=2,
    )


def debug() -> RunConfig:
    return RunConfig(
        model=debug_model(),
        # 5 latent frames in chunks of 1 after the first pair: starts 0, 2, 3, 4 (exercises every mode).
        data=DataConfig(kind="synthetic", num_clips=8, frames=5, height=4, width=4, text_tokens=6),
        loss=LossConfig(chunk_size=1),
        optim=OptimConfig(lr=1e-3, grad_clip=1.0),
        ema=EMAConfig(decay=0.9),
        checkpoint=CheckpointConfig(every=5, keep_last=2),
        metrics=MetricsConfig(log_every=1, tensorboard=False),
        out_dir="runs/debug",
        seed=0,
        max_steps=20,
        global_batch_size=2,
        device="cpu",
        cpu_threads=1,
    )
