"""A ~170 M-parameter SANA-WM trained from scratch on procedural worlds, on one GPU.

Data (official zip layout, 121-frame 352x640 clips -> latents 128 x 16 x 11 x 20)::

    sana-wm worlds render --num_clips 2000 --out worlds
    sana-wm cache-latents worlds
    sana-wm train run --recipe recipes/demo.py
    sana-wm train export runs/demo demo.safetensors

Prompts are encoded on the fly with Gemma-2-2B (``data.text_encoder``). Everything but the model size,
the data and the optimiser follows the official stage-1 recipe (logit-normal timesteps with shift 9.95,
image condition 0.9, caption dropout 0.1, bidirectional, bf16 autocast, activation checkpointing); the
learning rate, warm-up, clipping and EMA are choices for training from scratch, not official values.
"""

from sana_wm.models import SanaWMConfig
from sana_wm.train.checkpoint import CheckpointConfig
from sana_wm.train.config import RunConfig
from sana_wm.train.dataset import DataConfig
from sana_wm.train.ema import EMAConfig
from sana_wm.train.losses import LossConfig
from sana_wm.train.metrics import MetricsConfig
from sana_wm.train.optim import OptimConfig


def demo_model() -> SanaWMConfig:
    """Width 896 (8 heads of 112), 8 blocks (softmax in blocks 3 and 7), the release's VAE/text widths."""
    return SanaWMConfig(
        hidden_size=896,
        depth=8,
        head_dim=112,
        cross_attn_heads=8,
        plucker_blocks=8,
    )


def demo() -> RunConfig:
    return RunConfig(
        model=demo_model(),
        data=DataConfig(kind="zip", raw_dir="worlds/raw", latent_dir="worlds/latents", num_workers=4),
        loss=LossConfig(null_caption="empty_prompt"),
        optim=OptimConfig(lr=2e-4, weight_decay=0.01, grad_clip=1.0, warmup_steps=1000),
        ema=EMAConfig(decay=0.999),
        checkpoint=CheckpointConfig(every=1000, keep_last=3),
        metrics=MetricsConfig(log_every=20),
        out_dir="runs/demo",
        max_steps=20_000,
        global_batch_size=8,
    )
