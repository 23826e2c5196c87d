"""Rank-0 progress: a console line, ``metrics.jsonl`` and (if installed) TensorBoard scalars.

Every logged step appends one JSON record ``{"step", "loss", "lr", "grad_norm", "samples_per_s",
"tokens_per_s", "mem_gb", "eta_s"}`` (plus a mode's own fields, e.g. the self-forcing DMD generator's
``generator_loss``) to ``OUT_DIR/metrics.jsonl``; ``loss`` and ``grad_norm`` are averaged
over the steps since the previous record and over ranks. When a run resumes, records after the checkpoint's
step are dropped first, so the file always describes one uninterrupted run. TensorBoard event files go to
``OUT_DIR/tensorboard`` when the ``tensorboard`` package is importable (it is not a dependency).
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sana_wm.errors import InputError
from sana_wm.utils.atomic import atomic_output

log = logging.getLogger("sana_wm")
METRICS_FILE = "metrics.jsonl"


@dataclass(kw_only=True, frozen=True)
class MetricsConfig:
    """Attributes:
    log_every: log every this many optimiser steps.
    tensorboard: also write TensorBoard scalars when ``tensorboard`` is installed.
    """

    log_every: int = 10
    tensorboard: bool = True

    def __post_init__(self) -> None:
        if self.log_every < 1:
            raise InputError(f"metrics.log_every: must be >= 1, got {self.log_every}")


def peak_memory_gb(device: torch.device) -> float:
    """Peak allocated CUDA memory, or the process's peak resident set size on the CPU, in GB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e9 if sys.platform == "darwin" else peak / 1e6  # bytes on macOS, KiB on Linux


def read_metrics(out_dir: str | Path) -> list[dict[str, Any]]:
    """All records of a run's ``metrics.jsonl`` (empty if none)."""
    path = Path(out_dir) / METRICS_FILE
    if not path.is_file():
        return []
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):  # a last line torn by a crash or a full disk: that record is lost
                log.warning("%s: dropping a torn last line", path)
                break
            raise InputError(f"{path}: line {number} is not a JSON record") from None
    return records


class MetricsLogger:
    """Writes progress on the main rank; the other ranks hold an inert logger."""

    def __init__(self, out_dir: str | Path, cfg: MetricsConfig, *, enabled: bool, max_steps: int) -> None:
        self.cfg = cfg
        self.enabled = enabled
        self.max_steps = max_steps
        self.path = Path(out_dir) / METRICS_FILE
        self.writer = None
        if enabled and cfg.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.info("tensorboard is not installed: scalars go to %s only", self.path)
            else:
                self.writer = SummaryWriter(str(Path(out_dir) / "tensorboard"))

    def rollback(self, step: int) -> None:
        """Drop records after ``step`` (called when resuming from the checkpoint of ``step``)."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [r for r in read_metrics(self.path.parent) if r["step"] <= step]
        with atomic_output(self.path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")

    def log(
        self,
        step: int,
        *,
        loss: float,
        lr: float,
        grad_norm: float,
        samples_per_s: float,
        tokens_per_s: float,
        mem_gb: float,
        seconds_per_step: float,
        extra: Mapping[str, float] | None = None,
    ) -> None:
        if not self.enabled:
            return
        eta_s = max(0, self.max_steps - step) * seconds_per_step
        record = {
            "step": step,
            "loss": loss,
            "lr": lr,
            "grad_norm": grad_norm,
            "samples_per_s": samples_per_s,
            "tokens_per_s": tokens_per_s,
            "mem_gb": mem_gb,
            "eta_s": eta_s,
            "time": time.time(),
            **(extra or {}),
        }
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key in ("loss", "lr", "grad_norm", "samples_per_s", "tokens_per_s", "mem_gb", *(extra or {})):
                self.writer.add_scalar(f"train/{key}", record[key], step)
        log.info(
            "step %d/%d  loss %.5f  lr %.3g  gnorm %.3f  %.2f samples/s  %.0f tokens/s  mem %.2f GB  eta %s",
            step,
            self.max_steps,
            loss,
            lr,
            grad_norm,
            samples_per_s,
            tokens_per_s,
            mem_gb,
            _duration(eta_s),
        )
        if extra:
            log.info("step %d  %s", step, "  ".join(f"{k} {v:.5f}" for k, v in extra.items()))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
