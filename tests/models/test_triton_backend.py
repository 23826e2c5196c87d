"""The whole transformer with ``backend="triton"`` (Triton interpreter, CPU) equals the torch backend.

Runs in a fresh interpreter with ``TRITON_INTERPRET=1`` set before anything imports triton (swapping triton
modules inside a long test session is fragile at whole-model scale).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import json, sys, torch
sys.path.insert(0, {helpers!r})
from parity_helpers import perturb_all_parameters, random_inputs
from sana_wm.models import MemoryPlan, SanaWMTransformer, tiny

torch.manual_seed(5)
model = SanaWMTransformer(tiny()).eval()
perturb_all_parameters(model, 5)
inputs = random_inputs(6, 2, 4, 2, 3)
errors = {{}}
with torch.no_grad():
    want = model(**inputs, backend="torch")
    for name, memory in (("none", None), ("chunked", MemoryPlan(heads_per_chunk=1, ffn_frames_per_chunk=2))):
        got = model(**inputs, backend="triton", memory=memory)
        errors[name] = ((got - want).abs().max() / want.abs().max()).item()
print(json.dumps(errors))
"""


def test_triton_backend_matches_torch_backend() -> None:
    pytest.importorskip("triton")
    helpers = str(Path(__file__).resolve().parent)
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(helpers=helpers)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    errors = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(errors) == {"none", "chunked"}
    for name, error in errors.items():
        assert error <= 1e-4, (name, error)
