"""Tiny CPU runs of the distillation modes (tests): the debug model made chunk-causal, 5 latent frames.

Chunks of 2 after the first (``first_plus_one``): ``[0, 3), [3, 5)``, which are also the student's
self-forcing chunks (the first absorbs ``5 mod 2``). The weight paths are placeholders the tests override::

    sana-wm train run --recipe recipes/debug_distill.py:debug_chunk_causal_teacher
    sana-wm train run --recipe recipes/debug_distill.py:debug_ode_pairs ode.teacher_from=TEACHER
    sana-wm train run --recipe recipes/debug_distill.py:debug_ode_regression ode.pairs_dir=PAIRS
    sana-wm train run --recipe recipes/debug_distill.py:debug_self_forcing_dmd dmd.real_from=TEACHER
"""

import dataclasses

from sana_wm.train.config import RunConfig, load_recipe
from sana_wm.train.dmd import DMDConfig
from sana_wm.train.losses import LossConfig
from sana_wm.train.ode import ODEConfig
from sana_wm.train.optim import OptimConfig


def _debug(out_dir: str, **changes: object) -> RunConfig:
    base = load_recipe(__file__.replace("debug_distill.py", "debug.py"))
    model = dataclasses.replace(base.model, chunk_size=2)
    return dataclasses.replace(base, model=model, out_dir=out_dir, max_steps=6, **changes)


def debug_chunk_causal_teacher() -> RunConfig:
    """Diffusion forcing on the chunk-causal model: the official chunk mixture over its chunks."""
    return _debug("runs/debug_chunk_causal", loss=LossConfig(chunk_size=2, chunk_mode="mixture"))


def debug_ode_pairs() -> RunConfig:
    """The teacher's staircase trajectories at 1000/967/908/764 → 0 (6 shifted steps + those levels)."""
    ode = ODEConfig(
        teacher_from="runs/debug_teacher.safetensors",
        teacher_chunk_size=2,
        teacher_steps=6,
        teacher_shift=3.0,
        shard_size=3,
        batch_size=2,
        dtype="fp32",
    )
    return _debug("runs/debug_ode_pairs", mode="ode_pairs", ode=ode)


def debug_ode_regression() -> RunConfig:
    return _debug(
        "runs/debug_ode", mode="ode_regression", ode=ODEConfig(pairs_dir="runs/debug_ode_pairs/ode_pairs")
    )


def debug_self_forcing_dmd() -> RunConfig:
    """Generator updated every 2nd iteration; bidirectional real score and critic; window 2 with the sink."""
    dmd = DMDConfig(
        real_from="runs/debug_teacher.safetensors",
        generator_update_interval=2,
        num_cached_blocks=2,
        sink=True,
        critic_optim=OptimConfig(lr=1e-3, betas=(0.0, 0.999), eps=1e-8, grad_clip=10.0),
    )
    optim = OptimConfig(lr=1e-3, betas=(0.0, 0.999), eps=1e-8, grad_clip=10.0)
    return _debug("runs/debug_dmd", mode="self_forcing_dmd", dmd=dmd, optim=optim)
