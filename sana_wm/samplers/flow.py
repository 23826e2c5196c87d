"""The flow-matching convention, defined once for training and sampling.

Noise level ``σ`` runs from 1 (pure noise) to 0 (data). With clean data ``x0`` and Gaussian noise ``ε``::

    x_σ = (1 - σ) x0 + σ ε          (linear interpolation path)
    v   = dx_σ/dσ = ε - x0          (velocity target; the network predicts v)

Sampling integrates ``dx/dσ = v`` from σ = 1 down to σ = 0, so an Euler step from σ to σ' < σ is
``x + (σ' - σ) v``. Timesteps fed to the network are ``t = 1000 σ``.

``sigma`` arguments broadcast against the tensors: pass a float, or a tensor already shaped to broadcast
(for example ``(B, 1, T, 1, 1)`` for per-frame noise levels on ``x_BCTHW``).
"""

from __future__ import annotations

import torch

Sigma = float | torch.Tensor


def interpolate(x0: torch.Tensor, noise: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """Point on the path at noise level ``sigma``: ``(1 - σ) x0 + σ ε``."""
    return (1 - sigma) * x0 + sigma * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Training target of the network: ``v = ε - x0`` (independent of σ on the linear path)."""
    return noise - x0


def x0_from_velocity(x_t: torch.Tensor, v: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """Clean-data estimate implied by a velocity at ``x_t``: ``x0 = x_t - σ v``."""
    return x_t - sigma * v


def noise_from_velocity(x_t: torch.Tensor, v: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """Noise estimate implied by a velocity at ``x_t``: ``ε = x_t + (1 - σ) v``."""
    return x_t + (1 - sigma) * v


def velocity_from_x0(x_t: torch.Tensor, x0: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """Velocity implied by a clean-data estimate: ``v = (x_t - x0) / σ``; undefined at σ = 0."""
    return (x_t - x0) / sigma


def euler_step(x_t: torch.Tensor, v: torch.Tensor, sigma: Sigma, sigma_next: Sigma) -> torch.Tensor:
    """One Euler step of ``dx/dσ = v`` from ``sigma`` to ``sigma_next``: ``x + (σ' - σ) v``."""
    return x_t + (sigma_next - sigma) * v
