"""AdamW over the trainable parameters and the learning-rate schedule as a pure function of the step.

The schedule is recomputed from the step number every step (no scheduler object to checkpoint), so a
resumed run continues with exactly the rates it would have used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from sana_wm.errors import InputError


@dataclass(kw_only=True, frozen=True)
class OptimConfig:
    """Optimiser and schedule (defaults: the official stage-1 example recipe).

    Attributes:
        lr: peak learning rate (official 1e-5).
        betas, eps, weight_decay: AdamW settings (official (0.9, 0.999), 1e-10, 0). Decay applies to
            matrices only (weights with >= 2 dims); biases, norms and modulation tables are not decayed.
        grad_clip: max global gradient norm (official 0.5); 0 disables clipping (the norm is still logged).
        warmup_steps: linear warm-up from 0 (official 0).
        schedule: ``constant`` (official) or ``cosine`` decay to ``lr · min_lr_ratio`` at the last step.
        min_lr_ratio: floor of the cosine schedule relative to ``lr``.
    """

    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-10
    weight_decay: float = 0.0
    grad_clip: float = 0.5
    warmup_steps: int = 0
    schedule: Literal["constant", "cosine"] = "constant"
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise InputError(f"optim.lr: must be > 0, got {self.lr}")
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise InputError(f"optim.betas: must be in [0, 1), got {self.betas}")
        for name in ("eps", "weight_decay", "grad_clip", "min_lr_ratio"):
            if getattr(self, name) < 0:
                raise InputError(f"optim.{name}: must be >= 0, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise InputError(f"optim.warmup_steps: must be >= 0, got {self.warmup_steps}")


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW over ``model``'s parameters that require gradients (two groups: decayed matrices, the rest)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise InputError("model: has no trainable parameters")
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


def lr_at(step: int, cfg: OptimConfig, max_steps: int) -> float:
    """Learning rate of optimiser step ``step`` (0-based)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    span = max(1, max_steps - cfg.warmup_steps - 1)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + (cfg.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
