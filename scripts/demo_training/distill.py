"""The 4-step streaming student of the demo model: ODE regression then self-forcing DMD from its chunk-causal
teacher, stored as a small patch over the bidirectional transformer (``sana_wm.inference.demo_patch``).

``python scripts/train_demo_model.py --init_from sana_wm/assets/demo --distill --out OUT`` runs, within the
budget ``T`` (``--minutes``):

1. render fresh training clips (index range 3: no clip of the earlier runs) and the held-out clips; encode
   them with ``DIR``'s VAE (four variants each); every clip is cut to its first ``latent_frames`` latents (10:
   73 pixel frames, ``24k + 1`` like a stream, so the student's chunks are ``[0, 4), [4, 7), [7, 10)``);
2. the teacher: ``DIR``'s chunk-causal transformer (base + ``transformer_chunk_causal.safetensors``; a folder
   without that patch, e.g. ``--tiny``'s, runs its base weights chunk-causally);
3. ODE pairs (``sana_wm.train`` mode ``ode_pairs``) on up to ``pairs`` clips: the teacher's staircase sampler
   with the demo's ``steps`` / ``flow_shift`` and the student's levels inserted;
4. ODE regression (mode ``ode_regression``) of the student, initialised from the teacher, only the patch's
   tensors (``CHUNK_CAUSAL_TRAINABLE``) trainable, until ``ode_fraction`` of ``T``;
5. self-forcing DMD (mode ``self_forcing_dmd``) from the ODE student: the demo's bidirectional transformer as
   the frozen real score and the critic's start, no guidance (the demo is prompt-free), all chunks in the
   window, until ``T − eval_reserve_s``;
6. the patch ``transformer_student.safetensors`` (the trained tensors in fp16, the base's SHA-256; about
   2.5 MB) and an evaluation on the held-out clips from the same noise: the teacher (``steps``-step
   staircase), the ODE student and the final student (4 steps, the streaming rollout), decoded, against the
   renders.

The student's levels are the official rule under the demo's flow shift: ``[1, 0.75, 0.5, 0.25]`` shifted by
``flow_shift`` (official shift 10 gives 1000/967/908/764; the demo's 3 gives 1000/900/750/500), recorded in
``demo_model.json["student"]["step_list"]`` for ``sana-wm stream``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from demo_training.chunk_causal import CLIP_ROUND
from demo_training.data import LatentClips, RenderedClip
from demo_training.evaluate import motion_metrics
from demo_training.recipe import CHUNK_CAUSAL_TRAINABLE, DemoRecipe, causal_dit_config
from demo_training.run import Clock, data_and_vae, environment, setup_device, write_json
from demo_training.vae_training import encode_clips, normalise
from sana_wm.errors import InputError
from sana_wm.inference.demo_model import METADATA_FILE, TRANSFORMER_FILE, read_metadata
from sana_wm.inference.demo_patch import PATCH_FILE, PATCH_FORMAT, merged_state, write_patch
from sana_wm.models import load_transformer, save_transformer
from sana_wm.models.causal import ChunkLayout
from sana_wm.samplers.chunked import chunk_starts, sample_chunk_flow_euler, student_sigmas
from sana_wm.samplers.schedules import flow_sigmas
from sana_wm.train import Trainer, export_inference, read_metrics
from sana_wm.train.checkpoint import CheckpointConfig
from sana_wm.train.config import RunConfig
from sana_wm.train.dmd import Conditioning, DMDConfig, self_forcing_rollout
from sana_wm.train.metrics import MetricsConfig
from sana_wm.train.ode import ODEConfig, clip_noise
from sana_wm.train.optim import OptimConfig
from sana_wm.train.parallel import ParallelConfig, trainable_names
from sana_wm.vae import VideoVAE

log = logging.getLogger("sana_wm")
STUDENT_FILE = "transformer_student.safetensors"
CLIP_ROUND_DISTILL = CLIP_ROUND + 1
STUDENT_BLOCK = 3  # latent frames per streamed chunk


@dataclass(frozen=True)
class DistillRecipe:
    """Sizes and budgets of the distillation (full: one H100/H200; tiny: seconds on a CPU)."""

    latent_frames: int = 10
    student_steps: str = "1000,900,750,500,0"
    pairs: int = 1024
    pairs_batch: int = 32
    ode_fraction: float = 0.4
    ode_steps: int = 2000
    ode_batch: int = 32
    ode_lr: float = 1e-4
    dmd_steps: int = 5000
    dmd_batch: int = 16
    generator_lr: float = 5e-5
    critic_lr: float = 1e-5
    update_interval: int = 5
    log_every: int = 20


TINY = DistillRecipe(
    latent_frames=7, pairs=2, pairs_batch=2, ode_steps=2, ode_batch=2, dmd_steps=2, dmd_batch=2, log_every=1
)


class Cropped:
    """The first ``frames`` latent frames of every sample of a latent dataset."""

    def __init__(self, data: LatentClips, frames: int, limit: int | None = None) -> None:
        self.data, self.frames = data, frames
        self.count = len(data) if limit is None else min(limit, len(data))
        self.step = max(1, len(data) // self.count)  # spread a limited subset over all clips

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = dict(self.data[index * self.step])
        item["latents"] = item["latents"][:, : self.frames]
        item["camera_conditions"] = item["camera_conditions"][: self.frames]
        item["chunk_plucker"] = item["chunk_plucker"][:, : self.frames]
        return item


def _run_config(recipe: DemoRecipe, run_dir: Path, dev: torch.device, **fields: Any) -> RunConfig:
    return RunConfig(
        model=causal_dit_config(recipe),
        parallel=ParallelConfig(activation_checkpointing=False),
        checkpoint=CheckpointConfig(every=0, keep_last=1),
        out_dir=str(run_dir),
        seed=recipe.seed,
        device="cuda" if dev.type == "cuda" else "cpu",
        **fields,
    )


def _train(cfg: RunConfig, dataset: Any, seconds: float) -> dict[str, float]:
    """Run ``cfg`` on ``dataset``, stopped at ``seconds`` at the latest; the first and last logged numbers."""
    trainer = Trainer(cfg, dataset=dataset)
    timer = threading.Timer(max(1.0, seconds), trainer.request_stop)
    timer.start()
    try:
        trainer.run()
    finally:
        timer.cancel()
    records = read_metrics(cfg.out_dir)
    if not records:  # stopped before its first log line
        return {"steps": 0}
    out = {"steps": records[-1]["step"], "loss_first": records[0]["loss"], "loss_final": records[-1]["loss"]}
    generator = [r["generator_loss"] for r in records if "generator_loss" in r]
    if generator:
        out.update(generator_loss_first=generator[0], generator_loss_final=generator[-1])
    return out


def distill_student(
    recipe: DemoRecipe,
    out_dir: Path,
    *,
    device: str,
    minutes: float,
    work_dir: Path,
    init_from: Path | None,
    tiny: bool = False,
) -> dict[str, Any]:
    """Distill ``init_from``'s chunk-causal teacher into the 4-step student and write its patch to ``out_dir``
    (module docstring); returns the metadata written (``init_from``'s with a ``"student"`` entry)."""
    if init_from is None:
        raise InputError("--distill: needs --init_from, the demo model folder to distill")
    plan = TINY if tiny else DistillRecipe()
    # The student streams chunks of 3 latent frames (``sana_wm.inference.streaming``); the tiny run renders
    # 49-frame clips (7 latents: chunks [0, 4) and [4, 7)) so that the second chunk reads the first's cache.
    settings = recipe.settings
    if tiny:
        settings = dataclasses.replace(settings, num_frames=8 * (plan.latent_frames - 1) + 1)
        recipe = dataclasses.replace(recipe, max_gpu_clips=1)
    recipe = dataclasses.replace(recipe, settings=settings, causal_chunk_size=STUDENT_BLOCK)
    base_file = Path(init_from) / TRANSFORMER_FILE
    metadata = read_metadata(init_from)
    clock, dev, timings = Clock(minutes * 60.0), setup_device(device, recipe.seed), {}
    heldout, _, _, clips, _, vae, _ = data_and_vae(
        recipe, dev, clock, timings, init_from, clip_round=CLIP_ROUND_DISTILL
    )
    raw, camera, plucker = encode_clips(vae, clips, recipe, dev)
    train_set = Cropped(
        LatentClips(normalise(vae, raw), camera, plucker, recipe.dit_caption_channels), plan.latent_frames
    )
    raw, camera, plucker = encode_clips(vae, heldout, recipe, dev)
    heldout_set = Cropped(
        LatentClips(normalise(vae, raw), camera, plucker, recipe.dit_caption_channels), plan.latent_frames
    )
    timings["encode"] = clock.now() - sum(timings.values())

    teacher_file = work_dir / "teacher.safetensors"
    if (Path(init_from) / PATCH_FILE).is_file():
        config, state = merged_state(init_from)
        if config.chunk_size != STUDENT_BLOCK:
            raise InputError(
                f"--distill: the chunk-causal patch of {init_from} has chunks of {config.chunk_size}"
            )
        teacher = load_transformer(base_file, dtype=torch.float32, config=config)
        teacher.load_state_dict({k: v.float() for k, v in state.items()})
    else:
        log.info("%s has no chunk-causal patch: the teacher is its base run chunk-causally", init_from)
        teacher = load_transformer(base_file, dtype=torch.float32, config=causal_dit_config(recipe))
    save_transformer(teacher, teacher_file)
    s = recipe.settings
    trainable = trainable_names(teacher.config, CHUNK_CAUSAL_TRAINABLE)

    pairs_dir = work_dir / "ode_pairs"
    ode = ODEConfig(
        teacher_from=str(teacher_file),
        teacher_chunk_size=recipe.causal_chunk_size,
        teacher_steps=s.steps,
        teacher_shift=s.flow_shift,
        step_list=plan.student_steps,
        pairs_dir=str(pairs_dir),
        shard_size=plan.pairs_batch * 4,
        batch_size=plan.pairs_batch,
        dtype="fp32",
    )
    Trainer(
        _run_config(recipe, work_dir / "pairs", dev, mode="ode_pairs", ode=ode),
        dataset=Cropped(train_set.data, plan.latent_frames, plan.pairs),
    ).run()
    timings["ode_pairs"] = clock.now() - sum(timings.values())

    optim = OptimConfig(lr=plan.ode_lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, grad_clip=1.0)
    ode_cfg = _run_config(
        recipe,
        work_dir / "ode",
        dev,
        mode="ode_regression",
        ode=ode,
        optim=optim,
        metrics=MetricsConfig(log_every=plan.log_every, tensorboard=False),
        max_steps=plan.ode_steps,
        global_batch_size=plan.ode_batch,
        init_from=str(teacher_file),
        trainable=CHUNK_CAUSAL_TRAINABLE,
    )
    ode_stats = _train(ode_cfg, None, clock.left_until(plan.ode_fraction))
    ode_file = work_dir / "student_ode.safetensors"
    export_inference(ode_cfg.out_dir, ode_file, weights="model")
    timings["ode_regression"] = clock.now() - sum(timings.values())

    dmd = DMDConfig(
        real_from=str(base_file),
        guidance_scale=0.0,
        generator_update_interval=plan.update_interval,
        step_list=plan.student_steps,
        critic_optim=OptimConfig(lr=plan.critic_lr, betas=(0.0, 0.999), eps=1e-8, grad_clip=10.0),
    )
    dmd_cfg = _run_config(
        recipe,
        work_dir / "dmd",
        dev,
        mode="self_forcing_dmd",
        dmd=dmd,
        optim=OptimConfig(lr=plan.generator_lr, betas=(0.0, 0.999), eps=1e-8, grad_clip=10.0),
        metrics=MetricsConfig(log_every=plan.log_every, tensorboard=False),
        max_steps=plan.dmd_steps,
        global_batch_size=plan.dmd_batch,
        init_from=str(ode_file),
        trainable=CHUNK_CAUSAL_TRAINABLE,
    )
    dmd_stats = _train(dmd_cfg, train_set, clock.left_until(1.0, recipe.eval_reserve_s))
    student_fp32 = work_dir / "student_fp32.safetensors"
    export_inference(dmd_cfg.out_dir, student_fp32, weights="model")
    student = load_transformer(student_fp32)
    patch = write_patch(base_file, student, trainable, out_dir / STUDENT_FILE)
    timings["dmd"] = clock.now() - sum(timings.values())

    models = {"teacher": teacher, "ode_student": load_transformer(ode_file), "student": student}
    metrics = evaluate_student(models, heldout_set, heldout, VideoVAE(vae), recipe, plan, dev)
    timings["evaluate"] = clock.now() - sum(timings.values())
    timings["total"] = clock.now()
    metadata["student"] = {
        "file": STUDENT_FILE,
        "format": PATCH_FORMAT,
        "base_file": patch.base_file,
        "base_sha256": patch.base_sha256,
        "config": patch.config.to_dict(),
        "step_list": plan.student_steps,
        "teacher": PATCH_FILE if (Path(init_from) / PATCH_FILE).is_file() else "base run chunk-causally",
        "tensors": len(patch.tensors),
        "params": patch.num_params,
        "bytes": (out_dir / STUDENT_FILE).stat().st_size,
        "recipe": dataclasses.asdict(plan),
        "data": {"train_samples": len(train_set), "pairs": min(plan.pairs, len(train_set))},
        "metrics": {
            **{f"ode_{k}": v for k, v in ode_stats.items()},
            **{f"dmd_{k}": v for k, v in dmd_stats.items()},
            **metrics,
        },
        "timings_s": timings,
        "environment": environment(dev),
    }
    write_json(out_dir / METADATA_FILE, metadata)
    return metadata


@torch.no_grad()
def evaluate_student(
    models: dict[str, torch.nn.Module],
    data: Cropped,
    heldout: list[RenderedClip],
    vae: VideoVAE,
    recipe: DemoRecipe,
    plan: DistillRecipe,
    dev: torch.device,
) -> dict[str, float]:
    """Held-out clips (first variant of each) from the same noise: the teacher's staircase and the students'
    4-step rollouts, decoded; PSNR and motion agreement against the renders; latent PSNR to the teacher."""
    s = recipe.settings
    teacher_grid = flow_sigmas(s.steps, s.flow_shift)
    student_grid = student_sigmas(plan.student_steps)
    frames = plan.latent_frames
    videos: dict[str, list[np.ndarray]] = {name: [] for name in models}
    latent_psnr: dict[str, list[float]] = {name: [] for name in models if name != "teacher"}
    for index in range(len(heldout)):
        item = data[4 * index]  # variant 0: the clip as rendered
        x0 = item["latents"][None].to(dev)
        cond = Conditioning(
            text=item["text"][None].to(dev),
            text_mask=item["text_mask"][None].to(dev),
            camera=item["camera_conditions"][None].to(dev),
            plucker=item["chunk_plucker"][None].to(dev),
        )
        initial = clip_noise(recipe.heldout_seed, index, x0.shape[1:])[None].to(dev)
        initial[:, :, 0] = x0[:, :, 0]
        outputs = {}
        for name, model in models.items():
            model = model.to(dev).eval()
            if name == "teacher":
                outputs[name] = _staircase(model, initial, cond, teacher_grid, recipe.causal_chunk_size)
            else:
                outputs[name] = self_forcing_rollout(model, initial, cond, student_grid)
            video = vae.decode(outputs[name]).float().clamp(-1, 1)
            videos[name].append(((video[0].permute(1, 2, 3, 0) + 1) * 127.5).round().byte().cpu().numpy())
        for name in latent_psnr:
            mse = float((outputs[name] - outputs["teacher"]).square().mean())
            peak = float(outputs["teacher"].abs().max()) ** 2
            latent_psnr[name].append(10 * np.log10(peak / max(mse, 1e-12)))
    truth = [c.frames_FHW3[: 8 * (frames - 1) + 1].numpy() for c in heldout]
    metrics: dict[str, float] = {}
    for name, generated in videos.items():
        for key, value in motion_metrics(generated, truth).items():
            metrics[f"heldout_{name}_{key}"] = value
    for name, values in latent_psnr.items():
        metrics[f"heldout_{name}_latent_psnr_vs_teacher_db"] = float(np.mean(values))
    for key, value in sorted(metrics.items()):
        log.info("eval %s = %.4f", key, value)
    return metrics


def _staircase(
    model: torch.nn.Module, initial: torch.Tensor, cond: Conditioning, grid: torch.Tensor, chunk: int
) -> torch.Tensor:
    starts = chunk_starts(initial.shape[2], chunk)

    def fn(prefix: torch.Tensor, t_B1T: torch.Tensor, active: list[int]) -> torch.Tensor:
        end = prefix.shape[2]
        camera, plucker = cond.camera[:, :end], cond.plucker[:, :, :end]
        layout = ChunkLayout(tuple(active))
        return model(prefix, t_B1T, cond.text, cond.text_mask, camera, plucker, chunks=layout)

    cond_mask = torch.zeros(initial.shape[2])
    cond_mask[0] = 1.0
    return sample_chunk_flow_euler(fn, initial, grid, starts, cond_mask_T=cond_mask)
