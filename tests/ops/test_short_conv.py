"""Bidirectional short convolution: impulse response, backends, diffusers oracle."""

from __future__ import annotations

import pytest
import torch

from sana_wm.ops.short_conv import bidirectional_short_conv


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_impulse_response_is_the_symmetric_kernel(backend: str) -> None:
    weight = torch.tensor([[1.0, 2.0, 3.0, 4.0]])  # causal taps; 4 multiplies the current frame
    x = torch.zeros(1, 9, 1, 1)
    x[0, 4] = 1.0
    y = bidirectional_short_conv(x, weight, backend=backend)[0, :, 0, 0]
    assert y.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0, 1.0, 0.0]


def test_backends_agree_and_match_diffusers_oracle() -> None:
    from diffusers.models.transformers.transformer_sana_wm import SanaWMTemporalShortConvolution

    gen = torch.Generator().manual_seed(0)
    frames, tokens, channels = 5, 6, 8
    x = torch.randn(2, frames, tokens, channels, generator=gen)
    oracle = SanaWMTemporalShortConvolution(channels, 4)
    with torch.no_grad():
        oracle.weight.copy_(torch.randn(channels, 1, 4, generator=gen))
        expected = oracle(x.flatten(1, 2), frames).unflatten(1, (frames, tokens))
    for backend in ("reference", "torch"):
        got = bidirectional_short_conv(x, oracle.weight[:, 0].detach(), backend=backend)
        assert (got - expected).abs().max() < 1e-5, backend
