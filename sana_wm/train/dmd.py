"""Self-forcing DMD: the streaming student (generator) rolls its own chunks out with caches, a frozen "real"
score (the teacher, with guidance) and an online "fake" score (the critic) tell it where its samples are off.

Shape letters: docs/conventions.md. Official recipe (``sana_wm_distill.py``, configs ``self_forcing_t43`` and
``self_forcing_t121``; reference ``official_camera_training.md`` §7):

- Rollout (:func:`self_forcing_rollout`): the student's chunks (:func:`~sana_wm.samplers.chunked.
  autoregressive_segments`), each walking the training schedule 1000/967/908/764 from its slice of one noise
  tensor and stopping at an *exit step* ``e`` drawn per iteration (the same on every rank), where the chunk's
  output is its x0 prediction ``x − σ_e v``; then a timestep-0 pass writes the clean chunk into the
  :class:`~sana_wm.models.causal.StreamCache` the next chunks read. Only the exit step's forward keeps
  gradients (the cache and the earlier steps are constants). This *is* the inference sampler
  (:func:`~sana_wm.samplers.chunked.sample_self_forcing`, called here on the schedule cut after ``e`` and
  ending at 0): an Euler step ``x + (σ' − σ) v`` equals re-noising the x0 prediction with the noise the
  velocity implies, ``(1 − σ') x0 + σ' (x + (1 − σ) v)``; the official trainer re-noises with fresh noise
  instead. With ``e`` the last step the rollout is bit for bit the streaming sampler's.
- Score inputs: ``t ~ U{0..999}``, ``σ = shift(t/1000)`` with shift 10, clamped to ``[0.02, 0.98]``, one per
  sample for every frame but frame 0 (σ = 0); ``x_σ = (1 − σ) gen + σ ε`` (frame 0 stays the clean image).
- Generator step (every ``generator_update_interval`` iterations, counting from 0): x0 predictions of the
  critic and of the real score with and without the caption, ``x0_real = x0_c + g (x0_c − x0_u)`` (g = 3);
  :func:`dmd_loss`. Critic step (every iteration, on a fresh rollout without gradients): the flow loss
  ``‖v_fake − (ε − gen)‖²`` with frame 0 masked. Each has its own AdamW (generator lr 1e-5, critic 2e-6,
  betas (0, 0.999), clip 10).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sana_wm.errors import InputError
from sana_wm.models.causal import StreamCache
from sana_wm.samplers.chunked import autoregressive_segments, sample_self_forcing, student_sigmas
from sana_wm.samplers.flow import interpolate, velocity_target, x0_from_velocity
from sana_wm.samplers.schedules import shift_sigmas
from sana_wm.train.losses import flow_loss
from sana_wm.train.optim import OptimConfig, lr_at, set_lr

TRAINING_STEPS = "1000,967,908,764,0"  # the official distillation schedule (inference: 1000,960,889,727,0)


@dataclass(kw_only=True, frozen=True)
class DMDConfig:
    """Self-forcing DMD (defaults: the official ``self_forcing_t43`` config).

    Attributes:
        real_from: weights of the frozen real score (the teacher; any file ``load_transformer`` reads).
        real_chunk_size: the real score's ``chunk_size`` (None: bidirectional, the official choice; 3: a
            chunk-causal teacher). Its other sizes are the run's ``model``'s.
        fake_from: the critic's initial weights (None: ``real_from``, as officially).
        fake_chunk_size: the critic's ``chunk_size`` (None: bidirectional).
        guidance_scale: ``g`` of ``x0_real = x0_c + g (x0_c − x0_u)`` (official 3.0; 0 = no guidance).
        uncond_caption: the real score's unconditional caption: ``zeros``, ``empty_prompt`` or a safetensors
            file with tensor ``text`` (as ``loss.null_caption``); the sample's text mask is kept.
        generator_update_interval: the generator steps on iterations ``0, N, 2N, ...``; the critic on all.
        step_list: the rollout's schedule (must end at 0).
        random_exit: draw the exit step uniformly per iteration (else always the last step).
        num_cached_blocks, sink: the rollout's softmax window (official t43: all chunks, no sink; t121: 2 and
            the sink).
        score_shift, min_sigma, max_sigma: the score timestep's shift and clamp.
        critic_optim: the critic's optimiser (its ``lr`` schedule follows the run's step).
    """

    real_from: str = ""
    real_chunk_size: int | None = None
    fake_from: str | None = None
    fake_chunk_size: int | None = None
    guidance_scale: float = 3.0
    uncond_caption: str = "zeros"
    generator_update_interval: int = 5
    step_list: str = TRAINING_STEPS
    random_exit: bool = True
    num_cached_blocks: int = -1
    sink: bool = False
    score_shift: float = 10.0
    min_sigma: float = 0.02
    max_sigma: float = 0.98
    critic_optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            lr=2e-6, betas=(0.0, 0.999), eps=1e-8, weight_decay=0.0, grad_clip=10.0
        )
    )

    def __post_init__(self) -> None:
        try:
            student_sigmas(self.step_list)
        except ValueError as err:
            raise InputError(f"dmd.step_list: {err}") from None
        if self.generator_update_interval < 1:
            raise InputError(
                f"dmd.generator_update_interval: must be >= 1, got {self.generator_update_interval}"
            )
        if not 0.0 <= self.min_sigma <= self.max_sigma <= 1.0:
            raise InputError(
                f"dmd: need 0 <= min_sigma <= max_sigma <= 1, got {self.min_sigma}, {self.max_sigma}"
            )
        if not self.score_shift > 0:
            raise InputError(f"dmd.score_shift: must be > 0, got {self.score_shift}")
        for name in ("real_chunk_size", "fake_chunk_size"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InputError(f"dmd.{name}: must be >= 1 or none, got {getattr(self, name)}")


def score_sigma(rng: np.random.Generator, cfg: DMDConfig) -> float:
    """One score noise level: ``t ~ U{0..999}``, ``shift(t/1000)``, clamped to ``[min_sigma, max_sigma]``."""
    u = torch.tensor(float(rng.integers(1000)) / 1000.0, dtype=torch.float64)
    return float(shift_sigmas(u, cfg.score_shift).clamp(cfg.min_sigma, cfg.max_sigma))


def dmd_direction(gen: Tensor, x0_fake: Tensor, x0_real: Tensor) -> Tensor:
    """The DMD gradient ``(x0_fake − x0_real) / mean|gen − x0_real|`` (normaliser per sample), fp32."""
    gen, x0_fake, x0_real = gen.float(), x0_fake.float(), x0_real.float()
    dims = tuple(range(1, gen.ndim))
    normaliser = (gen - x0_real).abs().mean(dim=dims, keepdim=True)
    return torch.nan_to_num((x0_fake - x0_real) / normaliser)


def dmd_loss(gen_BCThw: Tensor, x0_fake: Tensor, x0_real: Tensor, loss_mask_BT: Tensor) -> Tensor:
    """``0.5 · MSE(gen, stopgrad(gen − g))`` over the loss frames (:func:`~sana_wm.train.losses.flow_loss`'s
    reduction), ``g`` = :func:`dmd_direction`: its gradient in ``gen`` is ``g`` / (elements averaged)."""
    g = dmd_direction(gen_BCThw.detach(), x0_fake, x0_real)
    target = gen_BCThw.detach().float() - g
    return 0.5 * flow_loss(gen_BCThw.float(), target, loss_mask_BT)


def real_x0(x0_cond: Tensor, x0_uncond: Tensor | None, scale: float) -> Tensor:
    """Guided real-score prediction ``x0_c + g (x0_c − x0_u)`` (``x0_c`` when ``g`` is 0)."""
    if x0_uncond is None or scale == 0:
        return x0_cond
    return x0_cond + scale * (x0_cond - x0_uncond)


@dataclass
class Conditioning:
    """What every forward of one batch reads: text ``(B, L, D)``, its mask ``(B, L)``, camera ``(B, T, 20)``,
    Plücker ``(B, 48, T, h, w)``, and the unconditional text for guidance."""

    text: Tensor
    text_mask: Tensor
    camera: Tensor
    plucker: Tensor
    uncond_text: Tensor | None = None


def self_forcing_rollout(
    generator: nn.Module,
    initial_BCThw: Tensor,
    cond: Conditioning,
    sigmas: Tensor,
    *,
    exit_step: int | None = None,
    num_cached_blocks: int = -1,
    sink: bool = False,
    grad: bool = False,
    backend: str = "torch",
) -> Tensor:
    """The student's chunk-by-chunk rollout from ``initial_BCThw`` (noise with the image latent as frame 0),
    with its caches, through :func:`~sana_wm.samplers.chunked.sample_self_forcing`; returns the clip.

    ``sigmas`` is the schedule (ending at 0); each chunk stops at step ``exit_step`` (default: the last) and
    outputs its x0 prediction there. With ``grad`` the exit-step forwards keep their graph (every other
    forward, and the cache, run without). Chunks: ``autoregressive_segments(T, model chunk_size)``.
    """
    config = generator.config
    if config.chunk_size is None:
        raise InputError("self-forcing: the generator must be chunk-causal (model.chunk_size)")
    steps = sigmas.numel() - 1
    exit_step = steps - 1 if exit_step is None else exit_step
    if not 0 <= exit_step < steps:
        raise InputError(f"self-forcing: exit step {exit_step} is outside the {steps}-step schedule")
    grid = torch.cat([sigmas[: exit_step + 1].float(), sigmas.new_zeros(1, dtype=torch.float32)])
    cache = StreamCache(len(generator.blocks), window=num_cached_blocks, sink=sink)
    segments = autoregressive_segments(initial_BCThw.shape[2], config.chunk_size)
    cond_mask_T = torch.zeros(initial_BCThw.shape[2])
    cond_mask_T[0] = 1.0
    calls = [0]

    def model_fn(chunk: Tensor, t_B1T: Tensor, start: int, end: int, write: bool) -> Tensor:
        track = grad and not write and calls[0] == exit_step
        calls[0] = 0 if write else calls[0] + 1
        with torch.set_grad_enabled(track):
            # The sampler writes its result into the clip in place: a forward that keeps its graph gets a
            # copy, so the tensors it saved for the backward pass are never overwritten.
            return generator(
                chunk.clone() if track else chunk,
                t_B1T,
                cond.text,
                cond.text_mask,
                cond.camera[:, start:end],
                cond.plucker[:, :, start:end],
                backend=backend,
                cache=cache,
                write_cache=write,
            )

    x = initial_BCThw.clone()
    with torch.set_grad_enabled(grad):
        for _ in sample_self_forcing(model_fn, x, grid, segments, cond_mask_T=cond_mask_T):
            pass
    return x


def score_x0(model: nn.Module, noisy: Tensor, sigma_B1T: Tensor, text: Tensor, cond: Conditioning) -> Tensor:
    """A score model's x0 prediction ``x_σ − σ v`` at per-frame noise levels ``sigma_B1T``."""
    v = model(noisy, sigma_B1T * 1000.0, text, cond.text_mask, cond.camera, cond.plucker)
    return x0_from_velocity(noisy.float(), v.float(), sigma_B1T[:, :, :, None, None])


@dataclass
class DMDStats:
    """One iteration: the critic's loss and gradient norm; the generator's (None when it did not step)."""

    critic_loss: Tensor
    critic_grad_norm: Tensor
    generator_loss: Tensor | None = None
    generator_grad_norm: Tensor | None = None


class SelfForcingDMD:
    """One DMD iteration at a time (:meth:`step`); holds the frozen real score, the critic and its optimiser.

    ``autocast`` is the forward's precision context; ``clip`` clips a parameter list to a max norm and returns
    the total norm (the trainer's, FSDP-aware).
    """

    def __init__(
        self,
        cfg: DMDConfig,
        *,
        real: nn.Module,
        critic: nn.Module,
        critic_optimizer: torch.optim.Optimizer,
        autocast: Callable[[], contextlib.AbstractContextManager],
        clip: Callable[[list[nn.Parameter], float], Tensor],
        max_steps: int,
        seed: int,
    ) -> None:
        self.cfg, self.real, self.critic, self.critic_optimizer = cfg, real, critic, critic_optimizer
        self.autocast, self.clip, self.max_steps, self.seed = autocast, clip, max_steps, seed
        self.sigmas = student_sigmas(cfg.step_list)
        self.critic_params = [p for p in critic.parameters() if p.requires_grad]

    def exit_steps(self, step: int) -> tuple[int, int]:
        """Exit steps of the generator's and the critic's rollouts of iteration ``step`` (every rank draws
        the same: the generator seeds on ``(seed, step)`` only)."""
        last = self.sigmas.numel() - 2
        if not self.cfg.random_exit:
            return last, last
        rng = np.random.default_rng([self.seed, step, 1])
        return int(rng.integers(last + 1)), int(rng.integers(last + 1))

    def _draws(self, x0_BCThw: Tensor, rngs: list[np.random.Generator]) -> tuple[Tensor, Tensor, Tensor]:
        """Per sample, in order: rollout noise (frame 0 set to the image latent), score σ, score noise."""
        initial, sigma, noise = [], [], []
        shape = x0_BCThw.shape[1:]
        for b, rng in enumerate(rngs):
            gen = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
            start = torch.randn(shape, generator=gen)
            start[:, 0] = x0_BCThw[b, :, 0].float().cpu()
            initial.append(start)
            sigma.append(score_sigma(rng, self.cfg))
            gen = torch.Generator().manual_seed(int(rng.integers(2**63 - 1)))
            noise.append(torch.randn(shape, generator=gen))
        device = x0_BCThw.device
        frames = x0_BCThw.shape[2]
        sigma_B1T = torch.tensor(sigma, dtype=torch.float32)[:, None, None].repeat(1, 1, frames)
        sigma_B1T[:, :, 0] = 0.0
        return torch.stack(initial).to(device), sigma_B1T.to(device), torch.stack(noise).to(device)

    def step(
        self,
        step: int,
        generator: nn.Module,
        generator_optimizer: torch.optim.Optimizer,
        x0_BCThw: Tensor,
        cond: Conditioning,
        rngs: list[np.random.Generator],
        *,
        generator_clip: float,
    ) -> DMDStats:
        """Iteration ``step``: a generator update if it is its turn, then a critic update."""
        cfg = self.cfg
        mask_BT = torch.ones(x0_BCThw.shape[0], x0_BCThw.shape[2], device=x0_BCThw.device)
        mask_BT[:, 0] = 0.0
        gen_exit, critic_exit = self.exit_steps(step)
        generator_draws = self._draws(x0_BCThw, rngs)
        critic_draws = self._draws(x0_BCThw, rngs)
        stats_gen: tuple[Tensor, Tensor] | None = None
        rollout = {"num_cached_blocks": cfg.num_cached_blocks, "sink": cfg.sink}
        if step % cfg.generator_update_interval == 0:
            initial, sigma_B1T, noise = generator_draws
            with self.autocast():
                gen = self_forcing_rollout(
                    generator, initial, cond, self.sigmas, exit_step=gen_exit, grad=True, **rollout
                )
            with torch.no_grad(), self.autocast():
                noisy = interpolate(gen.detach(), noise, sigma_B1T[:, :, :, None, None])
                x0_fake = score_x0(self.critic, noisy, sigma_B1T, cond.text, cond)
                x0_cond = score_x0(self.real, noisy, sigma_B1T, cond.text, cond)
                x0_uncond = None
                if cfg.guidance_scale != 0:
                    x0_uncond = score_x0(self.real, noisy, sigma_B1T, cond.uncond_text, cond)
                x0_real = real_x0(x0_cond, x0_uncond, cfg.guidance_scale)
            loss = dmd_loss(gen, x0_fake, x0_real, mask_BT)
            loss.backward()
            params = [p for p in generator.parameters() if p.requires_grad]
            norm = self.clip(params, generator_clip)
            generator_optimizer.step()
            generator_optimizer.zero_grad(set_to_none=True)
            stats_gen = (loss.detach(), norm.detach())

        set_lr(self.critic_optimizer, lr_at(step, cfg.critic_optim, self.max_steps))
        initial, sigma_B1T, noise = critic_draws
        with torch.no_grad(), self.autocast():
            gen = self_forcing_rollout(
                generator, initial, cond, self.sigmas, exit_step=critic_exit, **rollout
            )
        noisy = interpolate(gen.float(), noise, sigma_B1T[:, :, :, None, None])
        with self.autocast():
            v_fake = self.critic(
                noisy, sigma_B1T * 1000.0, cond.text, cond.text_mask, cond.camera, cond.plucker
            )
        critic_loss = flow_loss(v_fake, velocity_target(gen.float(), noise), mask_BT)
        critic_loss.backward()
        critic_norm = self.clip(self.critic_params, cfg.critic_optim.grad_clip)
        self.critic_optimizer.step()
        self.critic_optimizer.zero_grad(set_to_none=True)
        stats = DMDStats(critic_loss.detach(), critic_norm.detach())
        if stats_gen is not None:
            stats.generator_loss, stats.generator_grad_norm = stats_gen
        return stats


def dmd_models(cfg: Any) -> Mapping[str, Any]:
    """The real score's and the critic's model configs and weights for run config ``cfg`` (a ``RunConfig``):
    the run's model with ``dmd.real_chunk_size`` / ``dmd.fake_chunk_size``."""
    import dataclasses

    dmd = cfg.dmd
    if not dmd.real_from:
        raise InputError("dmd.real_from: the self-forcing DMD mode needs the teacher's weights (real score)")
    return {
        "real": (dataclasses.replace(cfg.model, chunk_size=dmd.real_chunk_size), dmd.real_from),
        "critic": (
            dataclasses.replace(cfg.model, chunk_size=dmd.fake_chunk_size),
            dmd.fake_from or dmd.real_from,
        ),
    }
