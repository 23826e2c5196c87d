"""Training a subset of the parameters (``RunConfig.trainable``): the rest stays bit for bit, the optimiser
holds only the subset, the set is saved with the run, and a stopped run resumes onto the uninterrupted one."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from helpers.training import debug_config

from sana_wm.errors import InputError
from sana_wm.models import SanaWMTransformer, save_transformer
from sana_wm.train import Trainer, read_metrics, train
from sana_wm.train.checkpoint import CONFIG_FILE, latest_checkpoint, read_run_config
from sana_wm.train.parallel import parameters_by_name, select_trainable, trainable_names

pytestmark = pytest.mark.usefixtures("one_thread")

SUBSET = ("blocks.*.attn.proj.*", "blocks.1.scale_shift_table", "final_layer.*")
SETTINGS = ("max_steps=4", "checkpoint.every=0", "metrics.log_every=1", f"trainable={','.join(SUBSET)}")


def _initial(tmp_path: Path) -> dict[str, torch.Tensor]:
    """Non-trivial starting weights (``init_from``): the random init zeroes some tensors (e.g. the final
    layer), and a frozen zero would also pass a "still zero" check by accident."""
    cfg = debug_config(tmp_path)
    torch.manual_seed(1)
    model = SanaWMTransformer(cfg.model)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    save_transformer(model, tmp_path / "init.safetensors")
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_select_trainable_matches_names_and_refuses_unmatched_patterns() -> None:
    names = ["blocks.0.attn.proj.weight", "blocks.0.attn.proj.bias", "blocks.10.mlp.t_conv.weight", "x.w"]
    assert select_trainable(names, ()) == set(names)
    assert select_trainable(names, ("blocks.*.attn.proj.*",)) == set(names[:2])
    assert select_trainable(names, ("blocks.1?.*", "x.w")) == {names[2], "x.w"}
    with pytest.raises(InputError, match=r"'blocks\.\*\.mlp\.conv\*' matches no parameter"):
        select_trainable(names, ("x.w", "blocks.*.mlp.conv*"))


def test_trainable_names_leave_out_what_the_forward_never_uses(tmp_path: Path) -> None:
    model = debug_config(tmp_path).model  # block 0 GDN, block 1 softmax (its GDN gates are never used)
    assert trainable_names(model, ("blocks.*.attn.A_log", "raymap_embedder.*")) == ["blocks.0.attn.A_log"]
    assert len(trainable_names(model)) == len(list(SanaWMTransformer(model).parameters())) - 8


def test_frozen_parameters_stay_bit_identical_and_the_subset_trains(tmp_path: Path) -> None:
    initial = _initial(tmp_path)
    cfg = debug_config(tmp_path, *SETTINGS, f"init_from={tmp_path / 'init.safetensors'}")
    assert cfg.trainable == SUBSET
    trainer = Trainer(cfg)
    trainer.run()
    params = parameters_by_name(trainer.model)
    trained = {n for n, p in params.items() if p.requires_grad}
    assert trained == {
        "blocks.0.attn.proj.weight",
        "blocks.0.attn.proj.bias",
        "blocks.1.attn.proj.weight",
        "blocks.1.attn.proj.bias",
        "blocks.1.scale_shift_table",
        "final_layer.linear.weight",
        "final_layer.linear.bias",
        "final_layer.scale_shift_table",
    }
    in_optimiser = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert in_optimiser == {id(params[n]) for n in trained}
    state = trainer.model.state_dict()
    for name, value in state.items():
        if name in trained:
            assert not torch.equal(value, initial[name]), name
        else:
            assert torch.equal(value, initial[name]), name
    for name, shadow in trainer.ema.state_dict().items():  # the frozen weights' average is the weight
        if name not in trained:
            assert torch.equal(shadow, initial[name]), name
    saved = json.loads((Path(cfg.out_dir) / CONFIG_FILE).read_text(encoding="utf-8"))
    assert saved["trainable"] == list(SUBSET)
    assert read_run_config(latest_checkpoint(cfg.out_dir))["trainable"] == list(SUBSET)


def test_a_pattern_matching_nothing_is_refused_before_training(tmp_path: Path) -> None:
    cfg = debug_config(tmp_path, "trainable=blocks.*.attn.proj.*,blocks.*.atn.qkv.*")
    with pytest.raises(InputError, match="atn.qkv"):
        train(cfg)
    assert latest_checkpoint(cfg.out_dir) is None
    with pytest.raises(InputError, match="non-empty"):
        dataclasses.replace(cfg, trainable=("final_layer.*", " "))


def _stopping_after(cfg, steps: int) -> Trainer:
    """A trainer that asks itself to stop (as SIGTERM does) once ``steps`` optimiser steps have run."""
    trainer = Trainer(cfg)
    loss, calls = trainer._loss, [0]

    def counting(*args, **kwargs):
        calls[0] += 1
        if calls[0] == steps:
            trainer.request_stop()
        return loss(*args, **kwargs)

    trainer._loss = counting
    return trainer


def test_a_stopped_subset_run_resumes_exactly_and_keeps_its_set(tmp_path: Path) -> None:
    _initial(tmp_path)
    init = f"init_from={tmp_path / 'init.safetensors'}"
    reference = Trainer(debug_config(tmp_path / "reference", *SETTINGS, init))
    reference.run()

    cfg = debug_config(tmp_path, *SETTINGS, init)
    assert _stopping_after(cfg, 2).run().step == 2
    with pytest.raises(InputError, match="trains other parameters"):
        train(debug_config(tmp_path, *SETTINGS[:-1], "trainable=final_layer.*", init))
    resumed = Trainer(cfg)
    assert resumed.run().step == 4
    assert [r["loss"] for r in read_metrics(cfg.out_dir)] == [
        r["loss"] for r in read_metrics(reference.cfg.out_dir)
    ]
    want = reference.model.state_dict()
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, want[name]), name
    want_ema = reference.ema.state_dict()
    for name, value in resumed.ema.state_dict().items():
        assert torch.equal(value, want_ema[name]), name
