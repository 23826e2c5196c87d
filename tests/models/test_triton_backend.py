"""The whole transformer with ``backend="triton"`` equals the torch backend, in one pass and under a memory
plan, with every kernel run by the Triton interpreter on the CPU (``triton_interpreter``: the session runs
kernels interpreted without CUDA, see tests/conftest.py).

The model is ``tiny()`` made interpreter-sized: one GDN and one softmax block (tiny: three and one) of two
24-wide heads (tiny: 112), so the same block kinds, Plücker injection and masked head tiles (24 and 112 both
pad to a power of two).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers.parity import perturb_all_parameters, random_inputs

from sana_wm.models import MemoryPlan, SanaWMTransformer, tiny


@pytest.mark.usefixtures("triton_interpreter")
def test_triton_backend_matches_torch_backend() -> None:
    config = dataclasses.replace(
        tiny(), hidden_size=48, head_dim=24, depth=2, softmax_every_n=2, plucker_blocks=2
    )
    torch.manual_seed(5)
    model = SanaWMTransformer(config).eval()
    perturb_all_parameters(model, 5)
    inputs = random_inputs(6, 2, 4, 2, 3)
    errors = {}
    with torch.no_grad():
        want = model(**inputs, backend="torch")
        for name, memory in (
            ("none", None),
            ("chunked", MemoryPlan(heads_per_chunk=1, ffn_frames_per_chunk=2)),
        ):
            got = model(**inputs, backend="triton", memory=memory)
            errors[name] = ((got - want).abs().max() / want.abs().max()).item()
    assert set(errors) == {"none", "chunked"}
    for name, error in errors.items():
        assert error <= 1e-4, (name, error)
