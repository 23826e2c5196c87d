"""The loop in one process: it learns, AC and accumulation change nothing, export and EMA are exact."""

from __future__ import annotations

import math

import pytest
import torch
from helpers.training import debug_config

from sana_wm.cli import main
from sana_wm.models import SanaWMConfig, SanaWMTransformer, load_transformer, save_transformer
from sana_wm.train import Trainer, read_metrics, train
from sana_wm.train.checkpoint import complete_checkpoints, read_run_config
from sana_wm.train.dataset import micro_batch_plan
from sana_wm.train.ema import EMA, EMAConfig
from sana_wm.train.optim import OptimConfig, lr_at
from sana_wm.train.parallel import DistInfo, build_model, parameters_by_name, unused_parameters


def _losses(out_dir) -> list[float]:
    return [r["loss"] for r in read_metrics(out_dir)]


def test_overfits_one_clip(tmp_path):
    """Fixed noise and timestep on a single clip: the loss falls by far more than 10x in 40 steps."""
    cfg = debug_config(
        tmp_path,
        "data.num_clips=1",
        "global_batch_size=1",
        "max_steps=40",
        "optim.lr=3e-3",
        "loss.fixed_noise=true",
        "loss.timestep_sampling=fixed",
        "loss.flow_shift=1.0",
        "loss.caption_dropout_prob=0",
        "loss.chunk_size=none",
        "ema.decay=0",
        "checkpoint.every=0",
    )
    train(cfg)
    losses = _losses(cfg.out_dir)
    assert len(losses) == 40
    assert losses[0] / losses[-1] >= 10, (losses[0], losses[-1])


def test_activation_checkpointing_changes_nothing(tmp_path):
    runs = []
    for ac in ("true", "false"):
        trainer = Trainer(
            debug_config(tmp_path / ac, "max_steps=3", f"parallel.activation_checkpointing={ac}")
        )
        trainer.run()
        runs.append((_losses(trainer.cfg.out_dir), trainer.model.state_dict()))
    assert runs[0][0] == runs[1][0]
    for key, value in runs[0][1].items():
        assert torch.equal(value, runs[1][1][key]), key


def test_accumulation_equals_one_big_batch(tmp_path):
    big = debug_config(tmp_path / "big", "max_steps=3", "global_batch_size=4")
    accum = debug_config(tmp_path / "accum", "max_steps=3", "global_batch_size=4", "grad_accum_steps=2")
    train(big)
    train(accum)
    assert _losses(accum.out_dir) == pytest.approx(_losses(big.out_dir), rel=1e-6, abs=1e-7)


def test_export_writes_ema_or_raw_weights(tmp_path):
    trainer = Trainer(debug_config(tmp_path, "max_steps=4"))
    trainer.run()
    run_dir = trainer.cfg.out_dir
    assert [p.name for p in complete_checkpoints(run_dir)] == ["step_00000004"]
    assert read_run_config(complete_checkpoints(run_dir)[0]) == trainer.cfg.to_dict()
    ema_file, raw_file = tmp_path / "ema.safetensors", tmp_path / "raw.safetensors"
    assert main(["train", "export", str(run_dir), str(ema_file)]) == 0
    assert main(["train", "export", str(run_dir), str(raw_file), "--weights", "model"]) == 0
    ema, raw = load_transformer(ema_file), load_transformer(raw_file)
    assert ema.config == trainer.cfg.model
    live = parameters_by_name(trainer.model)
    for name, param in ema.named_parameters():
        assert torch.equal(param, trainer.ema.shadow[name]), name
        assert torch.equal(dict(raw.named_parameters())[name], live[name]), name
    assert not torch.equal(ema.final_layer.linear.weight, raw.final_layer.linear.weight)


def test_ema_update_by_hand():
    model = torch.nn.Linear(1, 1, bias=False)
    model.weight.data.fill_(1.0)
    ema = EMA(model, EMAConfig(decay=0.5, every=2))
    model.weight.data.fill_(3.0)
    ema.update(1)  # not an update step
    assert ema.shadow["weight"].item() == 1.0
    ema.update(2)
    assert ema.shadow["weight"].item() == 2.0
    model.weight.data.fill_(6.0)
    ema.update(4)
    assert ema.shadow["weight"].item() == 4.0


def test_lr_schedule_by_hand():
    cfg = OptimConfig(lr=1.0, warmup_steps=4, schedule="cosine", min_lr_ratio=0.1)
    assert [lr_at(s, cfg, 14) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(4, cfg, 14) == 1.0
    assert lr_at(13, cfg, 14) == pytest.approx(0.1)
    assert lr_at(9, cfg, 14) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 5 / 9)))
    assert lr_at(100, OptimConfig(lr=2.0), 10) == 2.0


def test_data_plan_splits_global_batches_across_ranks():
    common = {"num_items": 10, "global_batch": 4, "seed": 3, "shuffle": True}
    for step in range(5):
        one = micro_batch_plan(step, 0, micro_batch=4, rank=0, world_size=1, **common)
        two = [micro_batch_plan(step, 0, micro_batch=2, rank=r, world_size=2, **common) for r in (0, 1)]
        assert [s.index for s in one] == [s.index for part in two for s in part]
        assert [s.position for s in one] == [0, 1, 2, 3]
    epoch0 = [
        s.index
        for step in (0, 1)
        for s in micro_batch_plan(step, 0, micro_batch=4, rank=0, world_size=1, **common)
    ]
    assert len(set(epoch0)) == 8  # two steps of one epoch never repeat a sample


def test_unused_parameters_of_the_release_layout():
    """raymap_embedder and the delta-rule gates of the 5 softmax blocks get no gradient; all else does."""
    gates = ("A_log", "dt_bias", "beta_proj.weight", "beta_proj.bias", "gate_proj.weight", "gate_proj.bias")
    expected = {"raymap_embedder.proj.weight", "raymap_embedder.proj.bias"}
    expected |= {f"blocks.{i}.attn.{g}" for i in (3, 7, 11, 15, 19) for g in gates}
    assert unused_parameters(SanaWMConfig()) == expected


def test_initialisation_is_seeded_and_init_from_loads(tmp_path):
    cfg = debug_config(tmp_path)
    one = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    a = build_model(cfg.model, cfg.parallel, one, seed=5).state_dict()
    b = build_model(cfg.model, cfg.parallel, one, seed=5).state_dict()
    c = build_model(cfg.model, cfg.parallel, one, seed=6).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["final_layer.linear.weight"], c["final_layer.linear.weight"])
    source = SanaWMTransformer(cfg.model)
    save_transformer(source, tmp_path / "init.safetensors")
    loaded = build_model(cfg.model, cfg.parallel, one, seed=5, init_from=str(tmp_path / "init.safetensors"))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert (
        not loaded.raymap_embedder.proj.weight.requires_grad and loaded.x_embedder.proj.weight.requires_grad
    )
