"""Classifier-free guidance on flow velocities.

Batch convention (same as the official SANA-WM code): a guided model call evaluates a batch of ``2B`` whose
first half is conditioned on the negative / unconditional prompt and whose second half on the positive
prompt. The caller binds the text embeddings in that order (``cat([negative, positive])``); this module
only duplicates the latents and timesteps and combines the two halves.
"""

from __future__ import annotations

import torch

from sana_wm.samplers.solvers import ModelFn


def cfg(v_uncond: torch.Tensor, v_cond: torch.Tensor, scale: float) -> torch.Tensor:
    """Guided velocity ``v_u + s (v_c - v_u)``; ``s = 1`` returns ``v_c``, ``s = 0`` returns ``v_u``."""
    return v_uncond + scale * (v_cond - v_uncond)


def cfg_model_fn(model_fn_pair: ModelFn, scale: float) -> ModelFn:
    """Turn a ``[negative; positive]``-batched model into a guided ``model_fn`` for the solvers.

    Args:
        model_fn_pair: ``(x_(2B)CTHW, timestep_(2B)1T) -> v_(2B)CTHW`` whose first ``B`` rows see the negative
            prompt and last ``B`` rows the positive prompt.
        scale: guidance scale ``s`` (SANA-WM default 5.0).

    Returns:
        ``(x_BCTHW, timestep_B1T) -> v_BCTHW`` computing :func:`cfg` of the two halves from one model call.
    """

    def guided(x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        v_uncond, v_cond = model_fn_pair(torch.cat([x, x]), torch.cat([timestep, timestep])).chunk(2)
        return cfg(v_uncond, v_cond, scale)

    return guided
