"""Sigma schedules for flow-matching sampling, as pure functions returning tensors.

A schedule is a descending float32 tensor ``sigmas_S`` of ``num_steps + 1`` noise levels in [0, 1] whose last
entry is 0; step ``i`` integrates from ``sigmas_S[i]`` to ``sigmas_S[i + 1]``. The model is fed timesteps
``t = sigma * num_train_timesteps`` (see :func:`flow_timesteps`).
"""

from __future__ import annotations

import torch

from sana_wm.errors import InputError


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """Static ("SD3") timestep shift ``s*σ / (1 + (s-1)*σ)``, elementwise, in the dtype of ``sigmas``.

    ``shift > 1`` moves every level towards 1 (more time spent at high noise); 0 and 1 are fixed points.
    """
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def _linspace_f64(start: float, stop: float, num: int) -> torch.Tensor:
    # Same float64 arithmetic as numpy.linspace (start + i*step, last element set to stop), which is what
    # the reference scheduler uses; torch.linspace rounds differently in the last bits.
    if num == 1:
        return torch.tensor([start], dtype=torch.float64)
    step = (stop - start) / (num - 1)
    out = torch.arange(num, dtype=torch.float64) * step + start
    out[-1] = stop
    return out


def flow_sigmas(num_steps: int, shift: float, num_train_timesteps: int = 1000) -> torch.Tensor:
    """The SANA-WM sampling grid: ``num_steps`` shifted sigmas followed by a terminal 0, float32, ``(S+1,)``.

    Bit-for-bit the grid of diffusers' ``FlowMatchEulerDiscreteScheduler(shift=shift)`` after
    ``set_timesteps(num_steps)`` (static shift, no dynamic shifting), which is the scheduler the official
    SANA-WM sampler (``LTXFlowEuler``) is built on. That scheduler applies the shift twice:

    1. Its training grid ``σ = k/N`` (k = N..1) is shifted once, so its smallest level becomes
       ``σ_min = shift(1/N)``.
    2. ``set_timesteps`` spaces ``num_steps`` points linearly from ``shift(1) = 1`` down to that *already
       shifted* ``σ_min`` and shifts them again.

    The top of the grid is unaffected (``shift(1) = 1``), but the smallest non-zero sigma is
    ``shift(shift(1/N))`` instead of ``shift(1/N)``, so the last step jumps to 0 from a much higher noise
    level. For 60 steps, shift 9.8, N = 1000: the grid starts 1.0, 0.9982611, 0.9964681, ...; a single shift
    would end at 0.0097145, the double shift ends at 0.0877046 (timestep 87.70) and then 0. This is what the
    released model was sampled with, so we reproduce it rather than "fix" it.

    Float arithmetic mirrors the reference: the training-grid endpoints are shifted in float32, the linear
    spacing and second shift run in float64, and the result is rounded to float32.
    """
    if num_steps < 1:
        raise InputError(f"num_steps: must be at least 1, got {num_steps}")
    if not shift > 0:
        raise InputError(f"shift: must be positive, got {shift}")
    ends = torch.tensor([float(num_train_timesteps), 1.0], dtype=torch.float32) / num_train_timesteps
    sigma_max, sigma_min = shift_sigmas(ends, shift).tolist()
    t = _linspace_f64(sigma_max * num_train_timesteps, sigma_min * num_train_timesteps, num_steps)
    sigmas = shift_sigmas(t / num_train_timesteps, shift).to(torch.float32)
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def flow_timesteps(sigmas_S: torch.Tensor, num_train_timesteps: int = 1000) -> torch.Tensor:
    """Model timesteps ``t_i = σ_i * N`` for every step (the terminal 0 excluded), float32, ``(S,)``.

    Equal to the reference scheduler's ``timesteps`` when ``sigmas_S`` comes from :func:`flow_sigmas`.
    """
    return sigmas_S[:-1].to(torch.float32) * num_train_timesteps
