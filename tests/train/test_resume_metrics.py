"""The logged metrics of a resumed run equal the uninterrupted run's, also when the checkpoint falls inside a
logging window (log_every > 1), and a torn last line of metrics.jsonl does not block the resume."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.training import debug_config

from sana_wm.train import Trainer, read_metrics, train
from sana_wm.train.metrics import METRICS_FILE

SETTINGS = (
    "max_steps=6",
    "metrics.log_every=3",
    "checkpoint.every=0",
    "data.num_clips=2",
    "global_batch_size=1",
)


def _stopping_after(cfg, steps: int) -> Trainer:
    """A trainer that asks itself to stop (as SIGTERM does) once ``steps`` optimiser steps have run."""
    trainer = Trainer(cfg)
    loss, calls = trainer._loss, [0]

    def counting(*args, **kwargs):
        calls[0] += 1
        if calls[0] == steps * cfg.grad_accum_steps:
            trainer.request_stop()
        return loss(*args, **kwargs)

    trainer._loss = counting
    return trainer


@pytest.mark.usefixtures("one_thread")
def test_resume_inside_a_logging_window_logs_what_the_uninterrupted_run_logs(tmp_path) -> None:
    reference = debug_config(tmp_path / "reference", *SETTINGS)
    train(reference)
    want = [(r["step"], r["loss"], r["grad_norm"]) for r in read_metrics(reference.out_dir)]
    assert [step for step, _, _ in want] == [3, 6]

    cfg = debug_config(tmp_path, *SETTINGS)
    result = _stopping_after(cfg, 4).run()
    assert result.stopped and result.step == 4  # the checkpoint holds one step of the second window
    metrics = Path(cfg.out_dir) / METRICS_FILE
    metrics.write_text(metrics.read_text() + '{"step": 5, "loss": 0.1', encoding="utf-8")  # torn by a crash
    train(cfg)
    got = [(r["step"], r["loss"], r["grad_norm"]) for r in read_metrics(cfg.out_dir)]
    assert got == want
