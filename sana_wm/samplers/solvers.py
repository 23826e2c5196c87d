"""Stateless ODE solvers for flow-matching video latents.

Every solver is a function of ``(model_fn, x, sigmas)`` with no hidden step index: ``sigmas`` is a descending
``(S+1,)`` grid ending at 0 (see :mod:`sana_wm.samplers.schedules`), ``x`` is the starting latent
``x_BCTHW`` at noise level ``sigmas[0]``, and ``model_fn(x_BCTHW, timestep_B1T) -> v_BCTHW`` returns the
flow velocity ``v = ε - x0`` (:mod:`sana_wm.samplers.flow`). Timesteps are per latent frame, ``t = 1000 σ``
(``num_train_timesteps`` σ in general), float32.

Conditioning frames: ``cond_mask_T`` (``(T,)``, 1 for a clean conditioning frame such as the first-frame
latent, else 0) gives those frames timestep 0 and keeps them exactly as they are in ``x``.

Precision: each update is computed in float32 and the latent is cast back to ``x.dtype`` after every step,
as the official sampler does for its bf16 latents.

Progress: ``progress`` wraps the iterable of step indices and must yield them unchanged, e.g.
``progress=tqdm`` or ``functools.partial(tqdm, desc="denoise")`` for a bar with s/it; a generator that
yields the indices can also act as a per-step callback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from sana_wm.samplers.flow import euler_step

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Progress = Callable[[Iterable[int]], Iterable[int]]


def _check_inputs(x: torch.Tensor, sigmas: torch.Tensor, cond_mask_T: torch.Tensor | None) -> None:
    if x.ndim != 5:
        raise ValueError(f"x must be (B, C, T, H, W), got shape {tuple(x.shape)}")
    if sigmas.ndim != 1 or sigmas.numel() < 2:
        raise ValueError(f"sigmas must be 1-D with at least 2 entries, got shape {tuple(sigmas.shape)}")
    if cond_mask_T is not None and tuple(cond_mask_T.shape) != (x.shape[2],):
        raise ValueError(f"cond_mask_T must have shape ({x.shape[2]},), got {tuple(cond_mask_T.shape)}")


def _free_T(x: torch.Tensor, cond_mask_T: torch.Tensor | None) -> torch.Tensor:
    """``1 - cond_mask`` per latent frame, float32 on the device of ``x``."""
    if cond_mask_T is None:
        return torch.ones(x.shape[2], dtype=torch.float32, device=x.device)
    return 1.0 - cond_mask_T.to(device=x.device, dtype=torch.float32)


def _frame_timesteps(t: torch.Tensor, free_T: torch.Tensor, batch: int, n_train: int) -> torch.Tensor:
    """Per-frame timesteps ``min(t, (1 - mask) * N)`` as a fresh ``(B, 1, T)`` float32 tensor."""
    t_T = torch.minimum(t.expand_as(free_T), free_T * n_train)
    return t_T.view(1, 1, -1).repeat(batch, 1, 1)


def _steps(n: int, progress: Progress | None) -> Iterable[int]:
    return range(n) if progress is None else progress(range(n))


def sample_ltx_euler(
    model_fn: ModelFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    cond_mask_T: torch.Tensor | None = None,
    num_train_timesteps: int = 1000,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Per-token-timestep Euler ("LTXFlowEuler"), the default SANA-WM stage-1 sampler.

    Step ``i`` with ``t = float32(σ_i * N)``:

    - per-frame timesteps ``t_T = min(t, (1 - cond_mask_T) * N)``, passed to the model as ``(B, 1, T)``;
      conditioning frames get 0;
    - per frame, ``σ_cur = t_T / N`` (recomputed from the timestep, not read from the grid), and
      ``σ_next`` = the largest grid sigma strictly below ``σ_cur - 1e-6`` (0 if none);
    - ``x <- x + (σ_next - σ_cur) v`` in float32; frames with ``σ_cur = 0`` do not move;
    - only frames with ``t/N - 1e-6 < 1 - cond_mask`` take the update; conditioning frames are restored.

    Numerically identical (bit-for-bit in float32 and bf16) to diffusers' ``FlowMatchEulerDiscreteScheduler``
    driven with per-token timesteps and the negated velocity, as the SANA-WM pipeline does.

    Args:
        model_fn: ``(x_BCTHW, timestep_B1T) -> v_BCTHW``; for classifier-free guidance wrap the model with
            :func:`sana_wm.samplers.guidance.cfg_model_fn`.
        x: starting latent ``(B, C, T, H, W)``: noise on free frames, clean latents on conditioning frames.
        sigmas: ``(S+1,)`` descending grid ending with 0, e.g. from :func:`flow_sigmas`.
        cond_mask_T: ``(T,)`` 0/1 mask of clean conditioning frames, or None for none.
        num_train_timesteps: N, the timestep scale (``t = N σ``).
        progress: optional wrapper of the step-index iterable (``tqdm``).

    Returns:
        The sample at σ = 0, same shape and dtype as ``x``.
    """
    _check_inputs(x, sigmas, cond_mask_T)
    batch, _, frames, _, _ = x.shape
    grid = sigmas.to(device=x.device, dtype=torch.float32)
    timesteps = grid[:-1] * num_train_timesteps
    free_T = _free_T(x, cond_mask_T)
    for i in _steps(timesteps.numel(), progress):
        t = timesteps[i]
        t_B1T = _frame_timesteps(t, free_T, batch, num_train_timesteps)
        v = model_fn(x, t_B1T)
        sigma_cur_T = t_B1T[0, 0] / num_train_timesteps
        lower_ST = grid[:, None] < (sigma_cur_T - 1e-6)[None]
        sigma_next_T = (lower_ST * grid[:, None]).amax(dim=0)
        dt_T = (sigma_cur_T - sigma_next_T).view(1, 1, frames, 1, 1)
        stepped = x.float() - dt_T * v.float()
        update_T = (t / num_train_timesteps - 1e-6) < free_T
        x = torch.where(update_T.view(1, 1, frames, 1, 1), stepped, x).to(x.dtype)
    return x


def sample_euler(
    model_fn: ModelFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    cond_mask_T: torch.Tensor | None = None,
    num_train_timesteps: int = 1000,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Plain flow Euler: ``x <- x + (σ_{i+1} - σ_i) v(x, σ_i)`` on the grid, one model call per step.

    Differs from :func:`sample_ltx_euler` only in reading ``σ_i`` and ``σ_{i+1}`` straight from the grid
    (no round trip through the timestep and no grid search), which changes the result at float32 rounding
    level. Conditioning frames (``cond_mask_T == 1``) get timestep 0 and are restored after every step.
    Arguments and return value as in :func:`sample_ltx_euler`.
    """
    _check_inputs(x, sigmas, cond_mask_T)
    grid = sigmas.to(device=x.device, dtype=torch.float32)
    free_T = _free_T(x, cond_mask_T)
    keep = (free_T <= 0).view(1, 1, -1, 1, 1)
    for i in _steps(grid.numel() - 1, progress):
        sigma, sigma_next = grid[i], grid[i + 1]
        t_B1T = _frame_timesteps(sigma * num_train_timesteps, free_T, x.shape[0], num_train_timesteps)
        v = model_fn(x, t_B1T)
        stepped = euler_step(x.float(), v.float(), sigma, sigma_next)
        x = torch.where(keep, x, stepped).to(x.dtype)
    return x


def sample_heun(
    model_fn: ModelFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    cond_mask_T: torch.Tensor | None = None,
    num_train_timesteps: int = 1000,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Heun's method (explicit trapezoid, 2nd order): Karras et al. 2022 ("EDM"), Algorithm 1 without churn.

    Each step takes an Euler predictor to ``σ_{i+1}``, evaluates the velocity there and steps again with the
    mean of both velocities. The final step into ``σ = 0`` stays a plain Euler step, so the network is never
    queried at exactly zero noise. Cost: ``2 S - 1`` model calls for ``S`` steps; global error O(h²) versus
    O(h) for Euler. Conditioning frames are handled as in :func:`sample_euler`. Arguments and return value
    as in :func:`sample_ltx_euler`.
    """
    _check_inputs(x, sigmas, cond_mask_T)
    grid = sigmas.to(device=x.device, dtype=torch.float32)
    free_T = _free_T(x, cond_mask_T)
    keep = (free_T <= 0).view(1, 1, -1, 1, 1)
    batch = x.shape[0]
    final_step = [level <= 0 for level in sigmas[1:].tolist()]
    for i in _steps(grid.numel() - 1, progress):
        sigma, sigma_next = grid[i], grid[i + 1]
        t_B1T = _frame_timesteps(sigma * num_train_timesteps, free_T, batch, num_train_timesteps)
        v = model_fn(x, t_B1T).float()
        predicted = euler_step(x.float(), v, sigma, sigma_next)
        if not final_step[i]:
            x_pred = torch.where(keep, x, predicted).to(x.dtype)
            t_next = _frame_timesteps(sigma_next * num_train_timesteps, free_T, batch, num_train_timesteps)
            v_next = model_fn(x_pred, t_next).float()
            predicted = euler_step(x.float(), 0.5 * (v + v_next), sigma, sigma_next)
        x = torch.where(keep, x, predicted).to(x.dtype)
    return x
