"""Multi-process training and interruption, through the real CLI in subprocesses.

- two processes (torchrun, gloo, FSDP2 on the CPU) follow the one-process loss curve at the same global
  batch, stop together on SIGTERM, and their checkpoint exports to the same weights and resumes in one
  process;
- SIGTERM makes a run save at the end of its step and return; a run killed by SIGKILL (CLI subprocess) in
  the middle of writing a checkpoint leaves only complete checkpoints; resuming after either reproduces the
  uninterrupted losses bit for bit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
from helpers.training import DEBUG_RECIPE, debug_config, kill_when_paused, wait_until_paused

from sana_wm.cli import main
from sana_wm.models import load_transformer
from sana_wm.train import SyntheticClips, Trainer, read_metrics, train
from sana_wm.train.checkpoint import complete_checkpoints, export_inference, latest_checkpoint, step_dir


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _losses(out_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(out_dir)]


# Each rank of a torchrun job runs the CLI (``sana_wm.cli.main`` with this script's arguments); after its
# first checkpoint it touches ``$PAUSED_MARKER<rank>`` and waits until SIGTERM has reached it (the trainer's
# handler runs too), so the ranks agree to stop at the end of the next step. (Sending SIGTERM once the first
# checkpoint was seen raced the run: a test process held up for the seconds the run takes from there to its
# last step found it finished, not stopped.)
_RANK_PAUSED_AFTER_FIRST_SAVE = """
import os, signal, sys, time
from pathlib import Path
from sana_wm.cli import main
from sana_wm.train import trainer

save, sigterms = trainer.save_checkpoint, []

def save_then_wait_for_sigterm(*args, **kwargs):
    path = save(*args, **kwargs)
    if not sigterms:
        handler = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, lambda signum, frame: (sigterms.append(signum), handler(signum, frame)))
        Path(os.environ["PAUSED_MARKER"] + os.environ["RANK"]).touch()
        while not sigterms:
            time.sleep(0.01)
        signal.signal(signal.SIGTERM, handler)
    return path

trainer.save_checkpoint = save_then_wait_for_sigterm
sys.exit(main(sys.argv[1:]))
"""


def _step(checkpoint: Path) -> int:
    return int(checkpoint.name.removeprefix("step_"))


def test_two_processes_match_one_and_stop_on_sigterm(tmp_path):
    """torchrun, 2 ranks: the 1-rank loss curve; SIGTERM to torchrun reaches both ranks, which agree to save
    at the same step boundary; the sharded checkpoint exports to the 1-rank weights and resumes on 1 rank."""
    one = debug_config(tmp_path / "one", "max_steps=10", "checkpoint.every=1", "checkpoint.keep_last=0")
    train(one)
    two_dir = tmp_path / "two" / "run"
    script = tmp_path / "rank.py"
    script.write_text(_RANK_PAUSED_AFTER_FIRST_SAVE)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd = [*launch, str(script), "--quiet", "train", "run", "--recipe", str(DEBUG_RECIPE)]
    cmd += [f"out_dir={two_dir}", "max_steps=10", "checkpoint.every=2"]
    env = {**_env(), "PAUSED_MARKER": str(tmp_path / "paused_rank")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_paused(proc, [tmp_path / "paused_rank0", tmp_path / "paused_rank1"])
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=90)
    finally:
        proc.kill()
    stopped_at = _step(latest_checkpoint(two_dir))
    assert f"stopped at step {stopped_at};" in stderr, stderr[-3000:]
    assert 2 <= stopped_at < 10
    assert stopped_at == 3  # SIGTERM reached both ranks after step 2's checkpoint: they stop after step 3
    reference, sharded = _losses(Path(one.out_dir)), _losses(two_dir)
    assert len(sharded) == stopped_at
    assert max(abs(a - b) for a, b in zip(reference, sharded, strict=False)) < 1e-5, (reference, sharded)

    # The sharded checkpoint gathers into the same single-file weights as the one-process run's.
    export_inference(step_dir(one.out_dir, stopped_at), tmp_path / "one.safetensors")
    export_inference(two_dir, tmp_path / "two.safetensors")
    ours = load_transformer(tmp_path / "one.safetensors")
    theirs = load_transformer(tmp_path / "two.safetensors")
    for (name, a), b in zip(ours.state_dict().items(), theirs.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)

    # ... and resumes in one process (DCP reshards) onto the one-process curve.
    train(debug_config(tmp_path / "two", "max_steps=10", "checkpoint.every=2"))
    after = _losses(two_dir)
    assert len(after) == 10
    assert max(abs(a - b) for a, b in zip(reference, after, strict=True)) < 1e-5


class _SigtermAt:
    """A dataset that sends SIGTERM to its own process when sample ``index`` is read ``visit``-th time."""

    def __init__(self, dataset, index: int, visit: int) -> None:
        self.dataset, self.index, self.visit, self.seen = dataset, index, visit, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        if index == self.index:
            self.seen += 1
            if self.seen == self.visit:
                os.kill(os.getpid(), signal.SIGTERM)
        return self.dataset[index]


def test_sigterm_saves_at_the_step_boundary_and_returns(tmp_path):
    settings = ("max_steps=12", "checkpoint.every=0", "data.num_clips=2", "global_batch_size=1")
    cfg = debug_config(tmp_path, *settings)
    reference = debug_config(tmp_path / "reference", *settings)
    train(reference)
    clips = SyntheticClips(
        2, channels=4, frames=5, height=4, width=4, text_tokens=6, caption_channels=8, seed=0
    )
    # Sample 0 is read once per 2-step epoch: the 3rd read is in step 5 or 6 (1-based).
    result = Trainer(cfg, dataset=_SigtermAt(clips, 0, 3)).run()
    assert result.stopped and result.step in (5, 6)
    assert result.checkpoint == latest_checkpoint(cfg.out_dir)
    assert result.checkpoint.name == f"step_{result.step:08d}"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed again
    train(cfg)
    assert _losses(Path(cfg.out_dir)) == _losses(Path(reference.out_dir))


# The CLI (``sana_wm.cli.main`` with the arguments after ``-c``) in a process that stops inside its second
# checkpoint, its shards written and the ``.metadata`` that completes it not yet, touches ``$PAUSED_MARKER``
# and waits there to be killed. (A kill at a wall-clock moment raced the run: the test process had to poll
# and kill within the ~2 s the run takes from its first checkpoint to its end, and one held up that long by a
# loaded machine found the run finished, exit code 0, instead of killed.)
_CLI_PAUSED_IN_SECOND_SAVE = """
import os, sys, threading
from pathlib import Path
from torch.distributed.checkpoint import FileSystemWriter
from sana_wm.cli import main

finish, calls = FileSystemWriter.finish, []

def paused_finish(self, *args, **kwargs):
    calls.append(self)
    if len(calls) == 2:
        Path(os.environ["PAUSED_MARKER"]).touch()
        threading.Event().wait()
    return finish(self, *args, **kwargs)

FileSystemWriter.finish = paused_finish
sys.exit(main(sys.argv[1:]))
"""


def test_sigkill_then_resume_reproduces_the_losses(tmp_path):
    """Kill -9 (CLI subprocess) while it writes its second checkpoint, rerun the same command: the torn
    checkpoint is not resumed from, and the loss log equals the uninterrupted run's."""
    steps = ["max_steps=24", "checkpoint.every=3", "checkpoint.keep_last=0"]
    reference = debug_config(tmp_path / "reference", *steps)
    train(reference)
    expected = _losses(Path(reference.out_dir))
    assert len(expected) == 24

    out_dir = tmp_path / "run"
    args = ["--quiet", "train", "run", "--recipe", str(DEBUG_RECIPE), f"out_dir={out_dir}", *steps]
    launch = [sys.executable, "-c", _CLI_PAUSED_IN_SECOND_SAVE, *args]
    env = {**_env(), "PAUSED_MARKER": str(tmp_path / "paused")}
    proc = subprocess.Popen(launch, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kill_when_paused(proc, tmp_path / "paused")
    # Killed inside step 6's save: step 3 is the only complete checkpoint, step 6's folder is on disk but
    # torn, and the log already holds steps 4-6, which the resumed run must replace.
    assert complete_checkpoints(out_dir) == [step_dir(out_dir, 3)]
    assert [p.name for p in (out_dir / "checkpoints").iterdir() if p.name.startswith("step_00000006")]
    assert [r["step"] for r in read_metrics(out_dir)] == list(range(1, 7))

    # The same command again (in this process, to save an interpreter start) resumes and finishes.
    assert main(args) == 0
    assert _losses(out_dir) == expected
    assert [r["step"] for r in read_metrics(out_dir)] == list(range(1, 25))
