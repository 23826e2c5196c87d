"""Exponential moving average of the weights, shard-local under FSDP2.

The average holds one fp32 tensor per parameter with the parameter's own layout: under FSDP2 the
parameters are ``DTensor`` shards, so ``lerp_`` runs on each rank's shard with no communication, and the
average checkpoints through ``torch.distributed.checkpoint`` like the model (keys = parameter names as in
the state dict, whether or not the blocks are wrapped for activation checkpointing).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sana_wm.errors import InputError
from sana_wm.train.parallel import parameters_by_name


@dataclass(kw_only=True, frozen=True)
class EMAConfig:
    """Attributes:
    decay: per-update decay; 0 disables the average (the official stage-1 recipe runs without EMA).
    every: update every this many optimiser steps.
    """

    decay: float = 0.0
    every: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.decay < 1.0:
            raise InputError(f"ema.decay: must be in [0, 1), got {self.decay}")
        if self.every < 1:
            raise InputError(f"ema.every: must be >= 1, got {self.every}")

    @property
    def enabled(self) -> bool:
        return self.decay > 0


class EMA:
    """``shadow ← decay·shadow + (1 − decay)·param`` for every parameter of ``model`` (trainable or not)."""

    def __init__(self, model: nn.Module, cfg: EMAConfig) -> None:
        self.cfg = cfg
        self.params = parameters_by_name(model)
        with torch.no_grad():
            self.shadow = {name: p.detach().float().clone() for name, p in self.params.items()}

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold the current weights in after optimiser step ``step`` (1-based) if it is an update step."""
        if step % self.cfg.every:
            return
        weight = 1.0 - self.cfg.decay
        for name, shadow in self.shadow.items():
            shadow.lerp_(self.params[name].detach().float(), weight)

    def state_dict(self) -> dict[str, Tensor]:
        """The averages by parameter name (``DTensor`` shards under FSDP2), for DCP save and load."""
        return self.shadow
