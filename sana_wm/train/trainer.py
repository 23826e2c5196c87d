"""The training loop: one visible step (accumulate, clip, step, EMA, log, checkpoint), nothing hidden.

Launch with ``sana-wm train run`` (one process) or ``torchrun --nproc_per_node=N -m sana_wm train run``;
the loop is the same, :mod:`sana_wm.train.parallel` decides between a plain model and FSDP2.

Determinism: every random draw of a sample (timesteps, image condition, caption dropout, noise) comes from
a generator seeded by ``(seed, step, position in the global batch)``, and the data order is a function of
the step (:mod:`sana_wm.train.dataset`). Hence the same run on 1 or N processes sees the same global batches
and draws, and a resumed run continues exactly where the checkpoint left off (bit-identical on the CPU).

Modes (``RunConfig.mode``): ``flow`` and ``ode_regression`` run the loop below with their loss;
``self_forcing_dmd`` replaces its step by one DMD iteration (:class:`~sana_wm.train.dmd.SelfForcingDMD`: a
generator update every few iterations, a critic update every iteration; the critic and its optimiser are
checkpointed beside the generator; its log records carry the critic's ``loss`` and ``grad_norm`` and, over
the generator's updates in the window, ``generator_loss``, ``generator_grad_norm``, ``generator_steps``);
``ode_pairs`` writes the teacher's trajectories instead of training
(:func:`sana_wm.train.ode_pairs.write_ode_pairs`, resumable by shard).

Stopping: SIGTERM sets a flag; at the next step boundary all ranks agree on it, save a checkpoint and return
normally. Starting a run whose ``out_dir`` holds checkpoints resumes from the newest complete one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

import sana_wm.train.parallel as parallel
from sana_wm.errors import InputError
from sana_wm.samplers.chunked import chunk_starts
from sana_wm.samplers.flow import x0_from_velocity
from sana_wm.train.checkpoint import (
    CONFIG_FILE,
    latest_checkpoint,
    load_checkpoint,
    read_run_config,
    save_checkpoint,
)
from sana_wm.train.config import RunConfig, config_diff
from sana_wm.train.dataset import (
    PlannedSampler,
    SamplePlan,
    TrainingDataset,
    build_dataset,
    collate,
    micro_batch_plan,
)
from sana_wm.train.dmd import Conditioning, SelfForcingDMD, dmd_models
from sana_wm.train.ema import EMA
from sana_wm.train.losses import flow_inputs, flow_loss, load_null_caption
from sana_wm.train.metrics import MetricsLogger, peak_memory_gb
from sana_wm.train.ode import ODEPairs, ode_inputs
from sana_wm.train.optim import build_optimizer, lr_at, set_lr

log = logging.getLogger("sana_wm")


@dataclass(frozen=True)
class TrainResult:
    """How a run ended: the last completed ``step``, whether it ``stopped`` early on request, the last
    checkpoint written (None if none)."""

    step: int
    stopped: bool
    checkpoint: Path | None


def sample_rng(cfg: RunConfig, step: int, sample: SamplePlan) -> np.random.Generator:
    """The generator of every random draw of one sample (see the module docstring)."""
    if cfg.loss.fixed_noise:
        return np.random.default_rng([cfg.seed, sample.index])
    return np.random.default_rng([cfg.seed, step, sample.position, 0])


class Trainer:
    """Runs one :class:`RunConfig`. ``dataset`` overrides ``config.data`` (tests, custom data).

    After :meth:`run`, ``model``, ``optimizer`` and ``ema`` hold the final training state.
    """

    def __init__(self, config: RunConfig, *, dataset: TrainingDataset | None = None) -> None:
        self.cfg = config
        self.dataset = dataset
        self.model: torch.nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.ema: EMA | None = None
        self._stop = False
        self._text_encoder: Any = None
        self._null_text: torch.Tensor | None = None
        self.dmd: SelfForcingDMD | None = None

    def request_stop(self) -> None:
        """Ask the loop to checkpoint and return at the next step boundary (what SIGTERM does)."""
        self._stop = True

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        log.warning("SIGTERM: saving a checkpoint at the end of this step, then stopping")
        self._stop = True

    def run(self) -> TrainResult:
        """Train from the latest checkpoint in ``out_dir`` (or from scratch) to ``max_steps``."""
        self._stop = False
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, self._on_sigterm) if in_main_thread else None
        threads = torch.get_num_threads()
        info = parallel.init_distributed(self.cfg.device)
        try:
            return self._run(info)
        finally:
            if in_main_thread:
                signal.signal(signal.SIGTERM, previous)
            torch.set_num_threads(threads)
            parallel.shutdown(info)

    def _run(self, info: parallel.DistInfo) -> TrainResult:
        cfg = self.cfg
        if not info.is_main:
            log.setLevel(logging.ERROR)  # one console for the whole job: rank 0's
        if cfg.cpu_threads and info.device.type == "cpu":
            torch.set_num_threads(cfg.cpu_threads)
        micro_batch = cfg.micro_batch_size(info.world_size)
        out_dir = Path(cfg.out_dir)
        if info.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
        parallel.barrier(info)
        config_dict = cfg.to_dict()
        if cfg.mode == "ode_pairs":
            from sana_wm.train.ode_pairs import write_ode_pairs

            return TrainResult(write_ode_pairs(self, info), False, None)

        dmd = cfg.mode == "self_forcing_dmd"
        # The DMD generator's streamed forwards read a cache that later chunks overwrite: a forward recomputed
        # in the backward pass (activation checkpointing) would read the wrong one.
        model_parallel = (
            dataclasses.replace(cfg.parallel, activation_checkpointing=False) if dmd else cfg.parallel
        )
        model = parallel.build_model(
            cfg.model,
            model_parallel,
            info,
            seed=cfg.seed,
            init_from=cfg.init_from,
            trainable=cfg.trainable,
            lora=cfg.lora,
        )
        model.train()
        optimizer = build_optimizer(model, cfg.optim)
        ema = EMA(model, cfg.ema) if cfg.ema.enabled else None
        self.model, self.optimizer, self.ema = model, optimizer, ema
        extra = self._build_dmd(info) if dmd else None
        dataset = self.dataset or self.build_dataset()
        metrics = MetricsLogger(out_dir, cfg.metrics, enabled=info.is_main, max_steps=cfg.max_steps)

        step, last_checkpoint = 0, latest_checkpoint(out_dir)
        resumed_window = torch.zeros(6 if dmd else 3, dtype=torch.float64)
        if last_checkpoint is not None:
            self._check_resume(last_checkpoint, config_dict)
            step, _, resumed_window = load_checkpoint(
                last_checkpoint,
                model=model,
                optimizer=optimizer,
                ema=None if ema is None else ema.state_dict(),
                rank=info.rank,
                extra=extra,
                window_size=6 if dmd else 3,
            )
            log.info("resuming from %s (step %d)", last_checkpoint, step)
        metrics.rollback(step)
        if info.is_main:
            (out_dir / CONFIG_FILE).write_text(json.dumps(config_dict, indent=2) + "\n", encoding="utf-8")
        if step >= cfg.max_steps:
            log.info("nothing to do: step %d >= max_steps %d", step, cfg.max_steps)
            metrics.close()
            return TrainResult(step, False, last_checkpoint)

        plan = functools.partial(
            micro_batch_plan,
            num_items=len(dataset),
            global_batch=cfg.global_batch_size,
            micro_batch=micro_batch,
            rank=info.rank,
            world_size=info.world_size,
            seed=cfg.seed,
            shuffle=cfg.data.shuffle,
        )
        loader = torch.utils.data.DataLoader(
            dataset,  # type: ignore[arg-type]
            batch_sampler=PlannedSampler(plan, step, cfg.max_steps, cfg.grad_accum_steps),
            num_workers=cfg.data.num_workers,
            collate_fn=collate,
            pin_memory=info.device.type == "cuda",
        )
        batches = iter(loader)
        params = [p for p in model.parameters() if p.requires_grad]
        max_norm = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf")
        autocast = functools.partial(parallel.autocast_context, cfg.parallel, info.device)

        # The metrics window (loss and grad-norm sums since the last log line) continues across a resume.
        window_loss = resumed_window[0].to(info.device, torch.float32)
        window_norm = resumed_window[1].to(info.device, torch.float32)
        window_steps, window_tokens, window_start = int(resumed_window[2]), 0, time.perf_counter()
        # DMD: the generator's loss and grad-norm sums and its update count since the last log line.
        window_generator = resumed_window[3:].to(info.device, torch.float32)
        timed_steps = 0  # steps of the window run in this process (throughput)
        stopped = False
        while step < cfg.max_steps:
            lr = lr_at(step, cfg.optim, cfg.max_steps)
            set_lr(optimizer, lr)
            if self.dmd is not None:
                batch = next(batches)
                stats = self.dmd.step(
                    step,
                    model,
                    optimizer,
                    batch["latents"].to(info.device, non_blocking=True),
                    self._conditioning(batch, info.device),
                    [sample_rng(cfg, step, s) for s in plan(step, 0)],
                    generator_clip=max_norm,
                )
                window_loss += stats.critic_loss
                grad_norm = stats.critic_grad_norm
                if stats.generator_loss is not None:
                    window_generator += torch.stack(
                        [
                            stats.generator_loss,
                            stats.generator_grad_norm,
                            torch.ones_like(stats.generator_loss),
                        ]
                    )
                window_tokens += batch["latents"][0, 0].numel() * batch["latents"].shape[0] * info.world_size
            else:
                for micro in range(cfg.grad_accum_steps):
                    batch = next(batches)
                    rngs = [sample_rng(cfg, step, s) for s in plan(step, micro)]
                    parallel.set_gradient_sync(model, micro == cfg.grad_accum_steps - 1)
                    with autocast():
                        loss = self._loss(model, batch, rngs, info.device)
                    (loss / cfg.grad_accum_steps).backward()
                    window_loss += loss.detach() / cfg.grad_accum_steps
                    window_tokens += (
                        batch["latents"][0, 0].numel() * batch["latents"].shape[0] * info.world_size
                    )
                grad_norm = parallel.unwrap_grad_norm(torch.nn.utils.clip_grad_norm_(params, max_norm))
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            step += 1
            if ema is not None:
                ema.update(step)
            window_norm += grad_norm.detach()
            window_steps += 1
            timed_steps += 1

            if step % cfg.metrics.log_every == 0 or step == cfg.max_steps:
                mean = parallel.all_reduce_mean(torch.stack([window_loss, window_norm]) / window_steps, info)
                elapsed = time.perf_counter() - window_start
                metrics.log(
                    step,
                    loss=float(mean[0]),
                    lr=lr,
                    grad_norm=float(mean[1]),
                    samples_per_s=timed_steps * cfg.global_batch_size / elapsed,
                    tokens_per_s=window_tokens / elapsed,
                    mem_gb=peak_memory_gb(info.device),
                    seconds_per_step=elapsed / timed_steps,
                    extra=self._generator_record(window_generator, info) if self.dmd is not None else None,
                )
                window_loss.zero_()
                window_norm.zero_()
                window_generator.zero_()
                window_steps, window_tokens, window_start, timed_steps = 0, 0, time.perf_counter(), 0

            stopped = parallel.any_rank(self._stop, info)
            every = cfg.checkpoint.every
            if stopped or step == cfg.max_steps or (every and step % every == 0):
                save_start = time.perf_counter()
                window = parallel.all_reduce_mean(torch.stack([window_loss, window_norm]), info)
                generator = parallel.all_reduce_mean(window_generator, info) if self.dmd is not None else None
                last_checkpoint = save_checkpoint(
                    out_dir,
                    step,
                    model=model,
                    optimizer=optimizer,
                    ema=None if ema is None else ema.state_dict(),
                    samples=step * cfg.global_batch_size,
                    config=config_dict,
                    rank=info.rank,
                    keep_last=cfg.checkpoint.keep_last,
                    barrier=functools.partial(parallel.barrier, info),
                    log_window=torch.cat(
                        [
                            window.double().cpu(),
                            torch.tensor([float(window_steps)], dtype=torch.float64),
                            *([] if generator is None else [generator.double().cpu()]),
                        ]
                    ),
                    extra=extra,
                )
                log.info("saved %s", last_checkpoint)
                window_start += time.perf_counter() - save_start  # throughput counts training only
            if stopped:
                log.warning("stopped at step %d; run the same command again to resume", step)
                break
        metrics.close()
        return TrainResult(step, stopped, last_checkpoint)

    def build_dataset(self) -> TrainingDataset:
        """The run's data: the ODE pairs for ``ode_regression``, else ``config.data``."""
        cfg = self.cfg
        if cfg.mode == "ode_regression":
            if not cfg.ode.pairs_dir:
                raise InputError(
                    "ode.pairs_dir: the ode_regression mode reads the shards of an ode_pairs run"
                )
            pairs = ODEPairs(cfg.ode.pairs_dir)
            if pairs.step_list != cfg.ode.step_list:
                raise InputError(
                    f"ode.step_list: {cfg.ode.step_list} but the shards in {cfg.ode.pairs_dir} were made at "
                    f"{pairs.step_list}"
                )
            return pairs
        return build_dataset(
            cfg.data,
            channels=cfg.model.in_channels,
            caption_channels=cfg.model.caption_channels,
            seed=cfg.seed,
        )

    def _build_dmd(self, info: parallel.DistInfo) -> dict[str, tuple[torch.nn.Module, torch.optim.Optimizer]]:
        """The frozen real score, the critic and its optimiser (:class:`SelfForcingDMD`); returns the models
        the checkpoint carries beside the generator."""
        cfg, specs = self.cfg, dmd_models(self.cfg)
        real_cfg, real_from = specs["real"]
        real = parallel.build_model(real_cfg, cfg.parallel, info, seed=cfg.seed, init_from=real_from)
        real.requires_grad_(False)
        real.eval()
        critic_cfg, critic_from = specs["critic"]
        critic = parallel.build_model(critic_cfg, cfg.parallel, info, seed=cfg.seed, init_from=critic_from)
        critic.train()
        critic_optimizer = build_optimizer(critic, cfg.dmd.critic_optim)

        def clip(params: list[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))
            return parallel.unwrap_grad_norm(norm)

        self.dmd = SelfForcingDMD(
            cfg.dmd,
            real=real,
            critic=critic,
            critic_optimizer=critic_optimizer,
            autocast=functools.partial(parallel.autocast_context, cfg.parallel, info.device),
            clip=clip,
            max_steps=cfg.max_steps,
            seed=cfg.seed,
        )
        return {"critic": (critic, critic_optimizer)}

    def _conditioning(self, batch: dict[str, Any], device: torch.device) -> Conditioning:
        """The batch's text (and, for DMD guidance, the unconditional caption), camera and Plücker maps."""
        text = self._text(batch, device)
        uncond = self.caption(self.cfg.dmd.uncond_caption, batch, text, device)
        return Conditioning(
            text=text,
            text_mask=batch["text_mask"].to(device, non_blocking=True),
            camera=batch["camera_conditions"].to(device, non_blocking=True),
            plucker=batch["chunk_plucker"].to(device, non_blocking=True),
            uncond_text=uncond[None].expand_as(text).to(text.dtype),
        )

    @staticmethod
    def _generator_record(window: torch.Tensor, info: parallel.DistInfo) -> dict[str, float]:
        """The DMD generator's mean loss and grad norm over its updates in the window (none: no fields)."""
        loss, norm, count = parallel.all_reduce_mean(window, info).tolist()
        if count < 0.5:
            return {}
        return {"generator_loss": loss / count, "generator_grad_norm": norm / count, "generator_steps": count}

    def _check_resume(self, checkpoint: Path, config_dict: dict[str, Any]) -> None:
        saved = read_run_config(checkpoint)
        saved.setdefault("trainable", [])  # written before the field existed: the run trained everything
        saved.setdefault("mode", "flow")
        if saved["mode"] != self.cfg.mode:
            raise InputError(
                f"out_dir: {self.cfg.out_dir} holds a {saved['mode']} run, not {self.cfg.mode} (use a new "
                "out_dir)"
            )
        for section in ("ode", "dmd", "lora"):  # written before the modes existed
            saved.setdefault(section, config_dict[section])
        changed = config_diff(saved, config_dict)
        model_changes = [k for k in changed if k.startswith("model.")]
        if model_changes:
            raise InputError(
                f"out_dir: {self.cfg.out_dir} holds a run of another model ({', '.join(model_changes)} "
                "differ); use a new out_dir"
            )
        if "trainable" in changed:
            raise InputError(
                f"out_dir: {self.cfg.out_dir} holds a run that trains other parameters (trainable "
                f"{saved.get('trainable', [])} there, {list(self.cfg.trainable)} now); use a new out_dir"
            )
        lora_changes = [k for k in changed if k.startswith("lora.")]
        if lora_changes:
            raise InputError(
                f"out_dir: {self.cfg.out_dir} holds a run with other LoRA settings "
                f"({', '.join(lora_changes)} differ); use a new out_dir"
            )
        if changed:
            log.warning("resuming %s with changed settings: %s", checkpoint, ", ".join(changed))

    def _text(self, batch: dict[str, Any], device: torch.device) -> torch.Tensor:
        if "text" in batch:
            return batch["text"].to(device, non_blocking=True)
        if self.cfg.data.text_encoder == "none":
            batch_size, tokens = len(batch["prompt"]), self.cfg.data.text_max_length
            mask = torch.zeros(batch_size, tokens, dtype=torch.int64)
            mask[:, 0] = 1
            batch["text_mask"] = mask
            return torch.zeros(batch_size, tokens, self.cfg.model.caption_channels, device=device)
        text, mask = self._encoder(device).encode(
            batch["prompt"], use_chi_prompt=True, max_length=self.cfg.data.text_max_length
        )
        batch["text_mask"] = mask
        return text

    def _encoder(self, device: torch.device) -> Any:
        if self._text_encoder is None:
            from sana_wm.text_encoder import TextEncoder  # imports transformers; only for prompt datasets

            self._text_encoder = TextEncoder.from_pretrained(self.cfg.data.text_encoder, device=device)
        return self._text_encoder

    def batch_text(self, batch: dict[str, Any], device: torch.device) -> torch.Tensor:
        """The batch's caption features ``(B, L, D)`` (encoded if it holds prompts; sets ``text_mask``)."""
        return self._text(batch, device)

    def caption(
        self, spec: str, batch: dict[str, Any], text: torch.Tensor, device: torch.device
    ) -> torch.Tensor:
        """A fixed caption ``(L, D)`` by ``spec`` (``zeros``, ``empty_prompt`` or a safetensors file) for
        ``text``'s shape, cached per spec."""
        cache = self.__dict__.setdefault("_captions", {})
        if spec not in cache:
            cache[spec] = self._null_caption(batch, text, device, spec)
        return cache[spec]

    def _null_caption(
        self, batch: dict[str, Any], text: torch.Tensor, device: torch.device, spec: str | None = None
    ) -> torch.Tensor:
        spec = self.cfg.loss.null_caption if spec is None else spec
        if spec != "empty_prompt":
            return load_null_caption(spec, *text.shape[1:]).to(device)
        if "prompt" not in batch or self.cfg.data.text_encoder == "none":
            raise InputError(
                "loss.null_caption: empty_prompt needs prompts and a data.text_encoder to encode"
            )
        null, _ = self._encoder(device).encode([""], use_chi_prompt=True, max_length=text.shape[1])
        return null[0].float()

    def _loss(
        self,
        model: torch.nn.Module,
        batch: dict[str, Any],
        rngs: list[np.random.Generator],
        device: torch.device,
    ) -> torch.Tensor:
        text = self._text(batch, device)
        if self.cfg.mode == "ode_regression":
            return self._ode_loss(model, batch, text, rngs, device)
        if self._null_text is None:
            self._null_text = self._null_caption(batch, text, device)
        x0 = batch["latents"].to(device, non_blocking=True)
        inputs = flow_inputs(x0, text, self._null_text, self.cfg.loss, rngs)
        pred = model(
            inputs.noisy,
            inputs.timestep,
            inputs.text,
            batch["text_mask"].to(device, non_blocking=True),
            batch["camera_conditions"].to(device, non_blocking=True),
            batch["chunk_plucker"].to(device, non_blocking=True),
        )
        return flow_loss(pred, inputs.target, inputs.loss_mask)

    def _ode_loss(
        self,
        model: torch.nn.Module,
        batch: dict[str, Any],
        text: torch.Tensor,
        rngs: list[np.random.Generator],
        device: torch.device,
    ) -> torch.Tensor:
        """ODE regression (:mod:`sana_wm.train.ode`): x0 = x − σ v against the trajectory's clean end."""
        cfg = self.cfg.model
        traj = batch["ode_latents"].to(device, non_blocking=True)
        starts = chunk_starts(traj.shape[3], cfg.chunk_size or traj.shape[3], cfg.chunk_strategy)
        inputs = ode_inputs(traj, self.cfg.ode.sigmas(), starts, rngs)
        pred = model(
            inputs.noisy,
            inputs.timestep,
            text,
            batch["text_mask"].to(device, non_blocking=True),
            batch["camera_conditions"].to(device, non_blocking=True),
            batch["chunk_plucker"].to(device, non_blocking=True),
        )
        x0 = x0_from_velocity(inputs.noisy, pred.float(), inputs.sigma[:, :, :, None, None])
        return flow_loss(x0, inputs.target, inputs.loss_mask)


def train(config: RunConfig, *, dataset: TrainingDataset | None = None) -> TrainResult:
    """Run ``config`` to completion (or until stopped); see :class:`Trainer`."""
    return Trainer(config, dataset=dataset).run()
