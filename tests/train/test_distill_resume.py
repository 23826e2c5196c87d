"""Every distillation mode survives a SIGKILL: the CLI run is killed while it writes its second checkpoint
(or, for ``ode_pairs``, its second shard), the same command is run again, and the result equals an
uninterrupted run's: the logged losses (DMD: critic and generator) bit for bit, or the shards' tensors. And a
DMD run over 2 processes (FSDP2) follows the 1-process losses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.training import REPO, kill_when_paused
from safetensors import safe_open
from safetensors.torch import load_file

from sana_wm.cli import main
from sana_wm.models import SanaWMTransformer, save_transformer
from sana_wm.train import read_metrics, train
from sana_wm.train.checkpoint import complete_checkpoints, step_dir
from sana_wm.train.config import apply_overrides, load_recipe

RECIPE = REPO / "recipes" / "debug_distill.py"

# The CLI in a process that stops inside its second checkpoint (shards written, ``.metadata`` not yet) or
# before its second ODE shard, touches ``$PAUSED_MARKER`` and waits there to be killed.
_PAUSED_IN_SECOND_WRITE = """
import os, sys, threading
from pathlib import Path
from torch.distributed.checkpoint import FileSystemWriter
import sana_wm.train.ode_pairs as ode_pairs
from sana_wm.cli import main

calls = []

def pausing(original):
    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            Path(os.environ["PAUSED_MARKER"]).touch()
            threading.Event().wait()
        return original(*args, **kwargs)
    return wrapped

FileSystemWriter.finish = pausing(FileSystemWriter.finish)
ode_pairs.write_shard = pausing(ode_pairs.write_shard)
sys.exit(main(sys.argv[1:]))
"""


def _launch(marker: Path, args: list[str]) -> subprocess.Popen:
    """Start the CLI with ``args``; it pauses in its second write and touches ``marker``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PAUSED_MARKER": str(marker)}
    launch = [sys.executable, "-c", _PAUSED_IN_SECOND_WRITE, *args]
    return subprocess.Popen(launch, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random chunk-causal debug model as the teacher, real score and critic of every mode."""
    cfg = load_recipe(f"{RECIPE}:debug_chunk_causal_teacher")
    torch.manual_seed(11)
    path = tmp_path_factory.mktemp("teacher") / "teacher.safetensors"
    save_transformer(SanaWMTransformer(cfg.model), path)
    return path


@pytest.fixture(scope="module")
def pairs(teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pairs")
    cfg = load_recipe(f"{RECIPE}:debug_ode_pairs")
    train(apply_overrides(cfg, [f"out_dir={out}", f"ode.teacher_from={teacher}"]))
    return out / "ode_pairs"


MODES = ("debug_chunk_causal_teacher", "debug_ode_regression", "debug_self_forcing_dmd", "debug_ode_pairs")


def _settings(mode: str, teacher: Path, pairs: Path) -> list[str]:
    common = ["max_steps=3", "checkpoint.every=1", "checkpoint.keep_last=0"]
    return {
        "debug_chunk_causal_teacher": common,
        "debug_ode_regression": [*common, f"ode.pairs_dir={pairs}"],
        "debug_self_forcing_dmd": [*common, f"dmd.real_from={teacher}", f"init_from={teacher}"],
        "debug_ode_pairs": [f"ode.teacher_from={teacher}"],
    }[mode]


@pytest.fixture(scope="module")
def killed(teacher: Path, pairs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Every mode's CLI run, started together and killed in its second write: the CLI arguments by mode.
    Beside them a 2-process DMD run (torchrun, FSDP2 on gloo) runs to its end: ``"torchrun"``: (args,
    process)."""
    root = tmp_path_factory.mktemp("killed")
    two = [
        "--quiet",
        "train",
        "run",
        "--recipe",
        f"{RECIPE}:debug_self_forcing_dmd",
        f"out_dir={root / 'two'}",
    ]
    two += [*_settings("debug_self_forcing_dmd", teacher, pairs)[1:], "max_steps=2"]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = subprocess.Popen(
        [*launcher, "sana_wm", *two], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    runs = {}
    for mode in MODES:
        args = ["--quiet", "train", "run", "--recipe", f"{RECIPE}:{mode}", f"out_dir={root / mode}"]
        args += _settings(mode, teacher, pairs)
        runs[mode] = (args, _launch(root / f"{mode}.paused", args))
    for mode, (_, proc) in runs.items():
        kill_when_paused(proc, root / f"{mode}.paused")
    return {**{mode: args for mode, (args, _) in runs.items()}, "torchrun": (two, torchrun)}


@pytest.mark.parametrize(
    "mode", ["debug_chunk_causal_teacher", "debug_ode_regression", "debug_self_forcing_dmd"]
)
def test_sigkill_then_resume_reproduces_the_losses(
    mode: str, teacher: Path, pairs: Path, killed: dict[str, list[str]], tmp_path: Path
) -> None:
    settings = _settings(mode, teacher, pairs)
    reference = apply_overrides(
        load_recipe(f"{RECIPE}:{mode}"), [f"out_dir={tmp_path / 'reference'}", *settings]
    )
    train(reference)
    fields = ("step", "loss", "grad_norm", "generator_loss", "generator_grad_norm")
    expected = [[r.get(k) for k in fields] for r in read_metrics(reference.out_dir)]
    assert len(expected) == 3

    args = killed[mode]
    out_dir = Path(args[5].removeprefix("out_dir="))
    assert complete_checkpoints(out_dir) == [step_dir(out_dir, 1)]  # step 2's is torn
    assert main(args) == 0
    assert [[r.get(k) for k in fields] for r in read_metrics(out_dir)] == expected
    if mode == "debug_self_forcing_dmd":  # the generator steps on iterations 0 and 2 (interval 2)
        assert [r[0] for r in expected if r[3] is not None] == [1, 3]
    assert [r[0] for r in expected] == [1, 2, 3]


def test_ode_pairs_resume_after_sigkill_writes_the_same_shards(
    pairs: Path, killed: dict[str, list[str]]
) -> None:
    reference = pairs.parent  # the uninterrupted run of the same settings
    args = killed["debug_ode_pairs"]
    out_dir = Path(args[5].removeprefix("out_dir="))
    assert sorted(p.name for p in (out_dir / "ode_pairs").glob("*.safetensors")) == [
        "shard_00000.safetensors"
    ]
    assert main(args) == 0
    names = sorted(p.name for p in (reference / "ode_pairs").iterdir())
    assert names == sorted(p.name for p in (out_dir / "ode_pairs").iterdir())
    assert len(names) == 3
    for name in names:
        got, want = (folder / "ode_pairs" / name for folder in (out_dir, reference))
        got_tensors, want_tensors = load_file(str(got)), load_file(str(want))
        assert got_tensors.keys() == want_tensors.keys()
        assert all(torch.equal(got_tensors[k], want_tensors[k]) for k in want_tensors), name
        with safe_open(str(got), "pt") as a, safe_open(str(want), "pt") as b:
            assert a.metadata() == b.metadata()


def test_two_processes_follow_the_one_process_dmd_losses(killed: dict, tmp_path: Path) -> None:
    """FSDP2 over 2 processes (generator, critic and real score sharded; the rollout's cache written through
    the sharded blocks): the critic's and the generator's losses of the 1-process run."""
    args, proc = killed["torchrun"]
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    one = apply_overrides(load_recipe(f"{RECIPE}:debug_self_forcing_dmd"), [*args[5:], f"out_dir={tmp_path}"])
    train(one)
    fields = ("loss", "generator_loss")
    got = [[r.get(k) for k in fields] for r in read_metrics(Path(args[5].removeprefix("out_dir=")))]
    want = [[r.get(k) for k in fields] for r in read_metrics(tmp_path)]
    assert len(got) == 2 and got[1][1] is None  # iteration 1: the critic only
    assert [r[1] is None for r in want] == [False, True]
    assert [r[0] for r in got] == pytest.approx([r[0] for r in want], rel=1e-5)
    assert got[0][1] == pytest.approx(want[0][1], rel=1e-4, abs=1e-7)
