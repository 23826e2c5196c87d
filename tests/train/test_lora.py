"""LoRA fine-tuning (``RunConfig.lora``, peft): zero-B adapters are the base model exactly; merged adapters
equal peft's unmerged layers; training moves only the adapters and lowers the loss; the exported adapter file
merges back to the trained model's output; a SIGKILLed run resumes onto the uninterrupted losses; FSDP2
(2 processes) follows 1 process; damaged adapter files are refused in one line."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.training import DEBUG_RECIPE, debug_config, kill_when_paused
from safetensors.torch import save_file

from sana_wm.cli import main
from sana_wm.errors import InputError
from sana_wm.models import SanaWMTransformer, load_transformer, save_transformer
from sana_wm.models.lora import merge_adapter, read_adapter, save_adapter
from sana_wm.train import Trainer, read_metrics, train
from sana_wm.train.checkpoint import complete_checkpoints, export_inference, step_dir
from sana_wm.train.lora import DEFAULT_TARGETS, LoraConfig, adapter_tensors, inject_lora
from sana_wm.train.parallel import DistInfo, ParallelConfig, build_model, parameters_by_name

pytestmark = pytest.mark.usefixtures("one_thread")

LORA = ("lora.rank=4", "lora.alpha=8", "lora.camera=true")
CPU = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def _base(tmp_path: Path) -> Path:
    """Non-trivial base weights (the random init zeroes the camera output and the final layer)."""
    cfg = debug_config(tmp_path)
    torch.manual_seed(1)
    model = SanaWMTransformer(cfg.model)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    path = tmp_path / "base.safetensors"
    save_transformer(model, path)
    return path


def _inputs(cfg) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(5)
    m = cfg.model
    camera = torch.zeros(1, 3, 20)
    camera[..., [0, 5, 10, 15]] = 1.0
    camera[..., 16:] = torch.tensor([2.0, 2.0, 1.0, 1.0])
    camera[..., 3] = torch.tensor([0.0, 0.1, 0.2])
    return (
        torch.randn(1, m.in_channels, 3, 4, 4, generator=gen),
        torch.full((1, 1, 3), 600.0),
        torch.randn(1, 6, m.caption_channels, generator=gen),
        torch.ones(1, 6, dtype=torch.int64),
        camera,
        torch.randn(1, m.plucker_channels, 3, 4, 4, generator=gen),
    )


@torch.no_grad()
def _out(model: torch.nn.Module, cfg) -> torch.Tensor:
    model.eval()
    return model(*_inputs(cfg))


def _lora_model(cfg, base: Path) -> SanaWMTransformer:
    parallel = ParallelConfig(activation_checkpointing=False)
    return build_model(cfg.model, parallel, CPU, seed=cfg.seed, init_from=str(base), lora=cfg.lora)


def _randomise_b(model: torch.nn.Module) -> None:
    torch.manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".lora_B." in name:
                param.copy_(0.1 * torch.randn_like(param))


def test_zero_b_adapters_are_the_base_model_exactly(tmp_path: Path) -> None:
    base = _base(tmp_path)
    cfg = debug_config(tmp_path, *LORA)
    model = _lora_model(cfg, base)
    adapted = [n for n, _ in model.named_modules() if n.endswith(".lora_A")]
    assert len(adapted) == 2 * (len(DEFAULT_TARGETS) + 4)  # 2 blocks, with the camera branch
    assert all(".lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    a = [p for n, p in model.named_parameters() if ".lora_A." in n]
    assert all(p.abs().sum() > 0 for p in a)  # Kaiming A, zero B
    want = _out(load_transformer(base, config=cfg.model), cfg)
    assert torch.equal(_out(model, cfg), want)


def test_merged_adapter_file_equals_unmerged_peft_and_every_target_acts(tmp_path: Path) -> None:
    base = _base(tmp_path)
    cfg = debug_config(tmp_path, *LORA)
    model = _lora_model(cfg, base)
    _randomise_b(model)
    unmerged = _out(model, cfg)
    plain = _out(load_transformer(base, config=cfg.model), cfg)
    assert (unmerged - plain).abs().max() > 1e-3
    path = save_adapter(
        adapter_tensors(model.state_dict()),
        tmp_path / "a.safetensors",
        rank=4,
        alpha=8.0,
        targets=list(cfg.lora.patterns()),
        model_config=cfg.model.to_dict(),
    )
    assert json.loads(path.with_name("a.safetensors.json").read_text())["rank"] == 4
    merged = load_transformer(base, config=cfg.model)
    names = merge_adapter(merged, path)
    assert len(names) == 2 * (len(DEFAULT_TARGETS) + 4)
    assert (_out(merged, cfg) - unmerged).abs().max() <= 1e-5
    half = load_transformer(base, config=cfg.model)
    merge_adapter(half, path, scale=0.0)
    assert torch.equal(_out(half, cfg), plain)  # scale 0 is the base exactly
    for name in names:  # each adapted layer changes the output (none is bypassed by the forward)
        single = load_transformer(base, config=cfg.model)
        tensors, info = read_adapter(path)
        one = {k: v for k, v in tensors.items() if k.startswith(name + ".lora_")}
        save_adapter(one, tmp_path / "one.safetensors", rank=4, alpha=8.0, targets=[], model_config={})
        merge_adapter(single, tmp_path / "one.safetensors")
        assert not torch.equal(_out(single, cfg), plain), name


def test_training_moves_only_adapters_lowers_the_loss_and_exports(tmp_path: Path) -> None:
    base = _base(tmp_path)
    settings = ("max_steps=12", "checkpoint.every=0", "data.num_clips=2", "loss.fixed_noise=true")
    cfg = debug_config(tmp_path, *LORA, *settings, "optim.lr=1e-2", f"init_from={base}")
    trainer = Trainer(cfg)
    trainer.run()
    losses = [r["loss"] for r in read_metrics(cfg.out_dir)]
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3]), losses
    initial = load_transformer(base, config=cfg.model).state_dict()
    changed = 0
    for name, value in trainer.model.state_dict().items():
        if ".lora_" in name:
            changed += not torch.equal(value, torch.zeros_like(value))
        else:
            assert torch.equal(value, initial[name.replace(".base_layer.", ".")]), name
    assert changed > 0
    in_optimiser = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert in_optimiser == {id(p) for n, p in parameters_by_name(trainer.model).items() if ".lora_" in n}

    # export: adapters alone (raw) merge onto the base to the trained model's output; merged export the same
    want = _out(trainer.model, cfg)
    assert (
        main(
            ["--quiet", "train", "export", cfg.out_dir, str(tmp_path / "ad.safetensors"), "--weights", "lora"]
        )
        == 0
    )
    tensors, info = read_adapter(tmp_path / "ad.safetensors")
    assert info["model"] == json.loads((Path(cfg.out_dir) / "run_config.json").read_text())["model"]
    model = load_transformer(base, config=cfg.model)
    merge_adapter(model, tmp_path / "ad.safetensors")
    assert (_out(model, cfg) - want).abs().max() <= 1e-5
    export_inference(cfg.out_dir, tmp_path / "merged.safetensors", weights="model")
    assert (_out(load_transformer(tmp_path / "merged.safetensors"), cfg) - want).abs().max() <= 1e-5
    export_inference(cfg.out_dir, tmp_path / "ema.safetensors", weights="lora_ema")
    ema, _ = read_adapter(tmp_path / "ema.safetensors")
    assert ema.keys() == tensors.keys() and any(not torch.equal(ema[k], tensors[k]) for k in ema)
    size = (tmp_path / "ad.safetensors").stat().st_size
    assert size < (tmp_path / "merged.safetensors").stat().st_size / 2


def test_bad_adapter_files_are_refused_in_one_line(tmp_path: Path) -> None:
    base = _base(tmp_path)
    cfg = debug_config(tmp_path)
    model = load_transformer(base, config=cfg.model)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    good = {
        "blocks.0.attn.qkv.lora_A.weight": torch.zeros(4, 32),
        "blocks.0.attn.qkv.lora_B.weight": torch.zeros(96, 4),
    }
    kw = {"rank": 4, "alpha": 4.0, "targets": [], "model_config": {}}
    save_adapter({k: v for k, v in good.items() if "lora_A" in k}, tmp_path / "half.safetensors", **kw)
    wide = {**good, "blocks.0.attn.qkv.lora_A.weight": torch.zeros(4, 64)}
    save_adapter(wide, tmp_path / "wide.safetensors", **kw)
    save_adapter({k.replace("qkv", "nope"): v for k, v in good.items()}, tmp_path / "name.safetensors", **kw)
    cases = {
        "missing.safetensors": "does not exist",
        "junk.safetensors": "not a safetensors file",
        "plain.safetensors": "not a sana-wm LoRA adapter",
        "half.safetensors": "lacks its lora_A or lora_B",
        "wide.safetensors": "another model size",
        "name.safetensors": "no linear layer blocks.0.attn.nope",
    }
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name, message in cases.items():
        with pytest.raises(InputError, match=message) as err:
            merge_adapter(model, tmp_path / name)
        assert "\n" not in str(err.value)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing half-merged


def test_lora_settings_are_checked(tmp_path: Path) -> None:
    plain = debug_config(tmp_path, "max_steps=1")
    train(plain)
    with pytest.raises(InputError, match="not from a LoRA run"):
        export_inference(plain.out_dir, tmp_path / "x.safetensors", weights="lora")
    with pytest.raises(InputError, match="other LoRA settings"):
        train(debug_config(tmp_path, "max_steps=2", "lora.rank=2"))
    with pytest.raises(InputError, match="leave trainable empty"):
        debug_config(tmp_path, "lora.rank=2", "trainable=final_layer.*")
    with pytest.raises(InputError, match="matches no linear layer"):
        inject_lora(
            SanaWMTransformer(debug_config(tmp_path).model), LoraConfig(rank=2, targets=("blocks.*.mlp.*",))
        )
    with pytest.raises(InputError, match="lora.rank"):
        dataclasses.replace(LoraConfig(), rank=-1)


_PAUSED_IN_SECOND_CHECKPOINT = """
import os, sys, threading
from pathlib import Path
from torch.distributed.checkpoint import FileSystemWriter
from sana_wm.cli import main

calls = []
original = FileSystemWriter.finish

def pausing(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        Path(os.environ["PAUSED_MARKER"]).touch()
        threading.Event().wait()
    return original(*args, **kwargs)

FileSystemWriter.finish = pausing
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_then_resume_reproduces_the_losses_and_two_processes_follow(tmp_path: Path) -> None:
    """The CLI run is killed inside its second checkpoint; the same command again gives the uninterrupted
    losses bit for bit. Beside it a 2-process run (FSDP2 on gloo, adapters sharded) follows 1 process."""
    base = _base(tmp_path)
    settings = [*LORA, f"init_from={base}", "max_steps=3", "checkpoint.every=1", "checkpoint.keep_last=0"]
    args = [
        "--quiet",
        "train",
        "run",
        "--recipe",
        str(DEBUG_RECIPE),
        f"out_dir={tmp_path / 'killed'}",
        *settings,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PAUSED_MARKER": str(tmp_path / "paused")}
    two = [*args[:5], f"out_dir={tmp_path / 'two'}", *settings]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    torchrun = subprocess.Popen(
        [*launcher, "sana_wm", *two], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_IN_SECOND_CHECKPOINT, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    kill_when_paused(proc, tmp_path / "paused", timeout=300)
    killed = tmp_path / "killed"
    assert complete_checkpoints(killed) == [step_dir(killed, 1)]  # step 2's is torn

    reference = debug_config(tmp_path / "reference", *settings)
    train(reference)
    fields = ("step", "loss", "grad_norm")
    expected = [[r[k] for k in fields] for r in read_metrics(reference.out_dir)]
    assert main(args) == 0
    assert [[r[k] for k in fields] for r in read_metrics(killed)] == expected
    assert [r[0] for r in expected] == [1, 2, 3]

    _, stderr = torchrun.communicate(timeout=300)
    assert torchrun.returncode == 0, stderr[-3000:]
    got = [r["loss"] for r in read_metrics(tmp_path / "two")]
    assert got == pytest.approx([r[1] for r in expected], rel=1e-5)


def test_the_demo_lora_recipe_adapts_the_bundled_demo_model() -> None:
    from helpers.training import REPO

    from sana_wm.train.config import load_recipe

    cfg = load_recipe(str(REPO / "recipes" / "demo_lora.py"))
    assert cfg.lora.enabled and cfg.init_from is not None
    assert load_transformer(cfg.init_from).config == cfg.model
