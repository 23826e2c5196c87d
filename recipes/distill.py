"""The official distillation to the 4-step streaming student, stage by stage, at full size (one recipe each):

    sana-wm train run --recipe recipes/distill.py:chunk_causal_teacher      # stage 1, diffusion forcing
    sana-wm train run --recipe recipes/distill.py:ode_pairs                 # teacher trajectories -> shards
    sana-wm train run --recipe recipes/distill.py:ode_t43                   # stage A, ODE regression
    sana-wm train run --recipe recipes/distill.py:self_forcing_t43          # stage B, self-forcing DMD
    sana-wm train run --recipe recipes/distill.py:self_forcing_t121         # ... then 121 latents, window 2

(``torchrun --nproc_per_node=8 -m sana_wm train run ...`` shards every model with FSDP2.) Paths are those of
the Hugging Face releases and of the previous stage's ``sana-wm train export``; override them with
``init_from=...``, ``ode.teacher_from=...``, ``dmd.real_from=...``. Official values (``sana_wm_distill.py``,
``ode_t43.yaml``, ``self_forcing_t43.yaml``, ``self_forcing_t121.yaml``, the stage-1 example recipe) except:
weights and Adam state are fp32 with bf16 autocast (officially all bf16); no context parallelism. Between
stages: ``sana-wm train export RUN student.safetensors --weights model`` (and ``--weights critic`` for t121).
"""

import dataclasses

from sana_wm.models import SanaWMConfig
from sana_wm.train.checkpoint import CheckpointConfig
from sana_wm.train.config import RunConfig
from sana_wm.train.dataset import DataConfig
from sana_wm.train.dmd import DMDConfig
from sana_wm.train.losses import LossConfig
from sana_wm.train.metrics import MetricsConfig
from sana_wm.train.ode import ODEConfig
from sana_wm.train.optim import OptimConfig

BIDIRECTIONAL = "SANA-WM_bidirectional/dit/sana_wm_1600m_720p.safetensors"
CHUNK_CAUSAL = "SANA-WM_chunk_causal/dit/sana_wm_chunk_causal_1600m_720p.safetensors"
DATA = DataConfig(
    kind="zip",
    raw_dir="data/sekai_game_train_961frames_16fps_ovl640",
    latent_dir="data/vae_cache/LTX2VAE_diffusers_704x1280/sekai_game_train_961frames_16fps_ovl640",
)
STUDENT = SanaWMConfig(chunk_size=3)  # the release architecture, chunk-causal (first chunk 4 latent frames)
DISTILL_OPTIM = OptimConfig(lr=1e-5, betas=(0.0, 0.999), eps=1e-8, weight_decay=0.0, grad_clip=10.0)


def _frames(latents: int) -> DataConfig:
    return dataclasses.replace(DATA, max_frames=8 * (latents - 1) + 1)


def chunk_causal_teacher() -> RunConfig:
    """Stage 1 chunk-causal: diffusion forcing with the official chunk mixture (same_t 0.1, incremental 0.4,
    last-chunk anchor 0.4, clean prefix 0.1) over chunks of 3, from the chunk-causal release."""
    return RunConfig(
        model=STUDENT,
        data=DATA,
        loss=LossConfig(chunk_size=3, chunk_strategy="first_chunk_plus_one", chunk_mode="mixture"),
        optim=OptimConfig(lr=1e-5, betas=(0.9, 0.999), eps=1e-10, weight_decay=0.0, grad_clip=0.5),
        checkpoint=CheckpointConfig(every=50, keep_last=3),
        metrics=MetricsConfig(log_every=10),
        out_dir="runs/chunk_causal_teacher",
        init_from=CHUNK_CAUSAL,
        max_steps=10_000,
    )


def ode_pairs() -> RunConfig:
    """The chunk-causal teacher's staircase trajectories on 43-latent clips at 1000/967/908/764 → 0, fp16."""
    return RunConfig(
        model=STUDENT,
        data=_frames(43),
        mode="ode_pairs",
        ode=ODEConfig(teacher_from=CHUNK_CAUSAL, teacher_steps=50, teacher_shift=8.0, cfg_scale=1.0),
        out_dir="runs/ode_pairs",
        max_steps=1,
    )


def ode_t43() -> RunConfig:
    """Stage A: ODE regression of the student (from the chunk-causal teacher) onto the pairs."""
    return RunConfig(
        model=STUDENT,
        mode="ode_regression",
        ode=ODEConfig(pairs_dir="runs/ode_pairs/ode_pairs"),
        optim=OptimConfig(lr=2e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, grad_clip=1.0),
        checkpoint=CheckpointConfig(every=100, keep_last=3),
        metrics=MetricsConfig(log_every=10),
        out_dir="runs/ode_t43",
        seed=0,
        init_from=CHUNK_CAUSAL,
        max_steps=3000,
    )


def self_forcing_t43() -> RunConfig:
    """Stage B: self-forcing DMD on 43 latents, every chunk in the window, no sink; the frozen bidirectional
    teacher with guidance 3 as the real score, the critic from it; the generator every 5th iteration."""
    dmd = DMDConfig(
        real_from=BIDIRECTIONAL, guidance_scale=3.0, generator_update_interval=5, num_cached_blocks=-1
    )
    return RunConfig(
        model=STUDENT,
        data=_frames(43),
        mode="self_forcing_dmd",
        dmd=dmd,
        optim=DISTILL_OPTIM,
        checkpoint=CheckpointConfig(every=50, keep_last=3),
        metrics=MetricsConfig(log_every=10),
        out_dir="runs/self_forcing_t43",
        seed=0,
        init_from="runs/ode_t43/student.safetensors",  # sana-wm train export runs/ode_t43 ... --weights model
        max_steps=700,
    )


def self_forcing_t121() -> RunConfig:
    """Stage B continued on 121 latents with the streaming window: 2 chunks, the sink on."""
    cfg = self_forcing_t43()
    # The critic continues t43's: sana-wm train export runs/self_forcing_t43 ... --weights critic
    dmd = dataclasses.replace(
        cfg.dmd, num_cached_blocks=2, sink=True, fake_from="runs/self_forcing_t43/critic.safetensors"
    )
    return dataclasses.replace(
        cfg,
        data=_frames(121),
        dmd=dmd,
        out_dir="runs/self_forcing_t121",
        init_from="runs/self_forcing_t43/student.safetensors",
        max_steps=3000,
    )
