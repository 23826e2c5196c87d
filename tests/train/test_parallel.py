"""What ``train/parallel.py`` applies to the single-device model: activation checkpointing (same keys, same
outputs and gradients, blocks really recomputed) and initialisation on FSDP2 shards (the unsharded weights,
exactly, on 3 gloo ranks with uneven shards)."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys

import torch
from helpers.training import REPO
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper

from sana_wm.models import SanaWMConfig, SanaWMTransformer, tiny
from sana_wm.train.parallel import (
    DistInfo,
    ParallelConfig,
    apply_activation_checkpointing,
    build_model,
    parameters_by_name,
)

SEED = 7
# tiny() at width 32: 2 heads, so the (2, D) gate and adaLN tensors have fewer rows than the 3 ranks below.
SMALL = dataclasses.replace(tiny(), hidden_size=32, head_dim=16, cross_attn_heads=2)


def _inputs(batch: int = 1, frames: int = 3, height: int = 2, width: int = 3) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    camera = torch.eye(4).flatten().repeat(batch, frames, 1)
    camera[..., 3] = torch.arange(frames, dtype=torch.float32)  # translate along x
    intrinsics = torch.tensor([4.0, 4.0, width / 2, height / 2]).expand(batch, frames, 4)
    timestep = torch.rand(batch, 1, frames, generator=gen) * 1000
    timestep[..., 0] = 0
    return {
        "latents": torch.randn(batch, 16, frames, height, width, generator=gen),
        "timestep": timestep,
        "text": torch.randn(batch, 5, 64, generator=gen),
        "text_mask": torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0]]).expand(batch, 5),
        "camera_conditions": torch.cat([camera, intrinsics], dim=-1),
        "chunk_plucker": torch.randn(batch, 48, frames, height, width, generator=gen),
    }


def _unsharded_init(config: SanaWMConfig, seed: int) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        model = SanaWMTransformer(config)
    model.to_empty(device="cpu")
    torch.manual_seed(seed)
    model.init_weights()
    return model.state_dict()


def test_activation_checkpointing_keeps_keys_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    plain = SanaWMTransformer(SMALL)
    with torch.no_grad():  # every parameter non-zero, so every path carries gradient
        for param in plain.parameters():
            param.normal_(std=0.3)
    wrapped = copy.deepcopy(plain)
    apply_activation_checkpointing(wrapped)
    assert all(isinstance(block, CheckpointWrapper) for block in wrapped.blocks)

    assert list(wrapped.state_dict()) == list(plain.state_dict())
    assert list(parameters_by_name(wrapped)) == [name for name, _ in plain.named_parameters()]
    wrapped.load_state_dict(plain.state_dict())  # strict, both ways
    plain.load_state_dict(wrapped.state_dict())

    calls = {"plain": 0, "wrapped": 0}
    for key, model in (("plain", plain), ("wrapped", wrapped)):
        for block in model.blocks:
            inner = block._checkpoint_wrapped_module if isinstance(block, CheckpointWrapper) else block
            inner.register_forward_pre_hook(lambda *_, key=key: calls.__setitem__(key, calls[key] + 1))

    results = []
    for model in (plain, wrapped):
        out = model(**_inputs())
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads = {name: p.grad for name, p in parameters_by_name(model).items() if p.grad is not None}
        results.append((out.detach(), grads))
    (out_a, grads_a), (out_b, grads_b) = results
    depth = len(plain.blocks)
    assert calls == {"plain": depth, "wrapped": 2 * depth}  # the backward recomputed every block
    assert torch.equal(out_a, out_b)
    assert grads_a.keys() == grads_b.keys()
    # Never used: raymap_embedder (2 tensors), the GDN gates of the softmax block (6 tensors).
    assert len(grads_a) == sum(1 for _ in plain.parameters()) - 2 - 6
    for name, grad in grads_a.items():
        assert torch.equal(grad, grads_b[name]), name


def test_build_model_with_and_without_activation_checkpointing() -> None:
    """One process: same keys and the same initial weights as ``init_weights`` on an unsharded model."""
    info = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    reference = _unsharded_init(SMALL, SEED)
    for ac in (True, False):
        model = build_model(SMALL, ParallelConfig(activation_checkpointing=ac), info, seed=SEED)
        assert isinstance(model.blocks[0], CheckpointWrapper) is ac
        state = model.state_dict()
        assert list(state) == list(reference)
        for name, value in reference.items():
            assert torch.equal(state[name], value), name


_WORKER = """
import dataclasses, sys, torch
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor
from sana_wm.models import SanaWMTransformer, tiny
from sana_wm.train import parallel

torch.set_num_threads(1)
seed = int(sys.argv[2])
SMALL = dataclasses.replace(tiny(), hidden_size=32, head_dim=16, cross_attn_heads=2)
info = parallel.init_distributed("cpu")

def full(model):
    return {k: v.full_tensor() if isinstance(v, DTensor) else v for k, v in model.state_dict().items()}

# By hand: meta build, fully_shard per block and root, to_empty, init_weights on the shards.
with torch.device("meta"):
    model = SanaWMTransformer(SMALL)
mesh = init_device_mesh("cpu", (info.world_size,))
for block in model.blocks:
    fully_shard(block, mesh=mesh)
fully_shard(model, mesh=mesh)
model.to_empty(device="cpu")
assert all(isinstance(p, DTensor) for p in model.parameters())
torch.manual_seed(123)  # init_weights forks the RNG: this stream must not matter
parallel.init_weights(model, seed)
by_hand = full(model)
# The trainer's path: activation checkpointing, then the same.
built = parallel.build_model(SMALL, parallel.ParallelConfig(), info, seed=seed)
result = {"by_hand": by_hand, "build_model": full(built)}
if info.is_main:
    torch.save(result, sys.argv[1])
parallel.shutdown(info)
"""


def test_init_on_fsdp2_shards_equals_unsharded_init(tmp_path) -> None:
    """3 gloo ranks (uneven shards, and empty ones for the 2-row gate tensors): ``init_weights`` on the
    ``DTensor`` shards gathers into exactly the unsharded model's weights."""
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    out = tmp_path / "full.pt"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=3"]
    proc = subprocess.run(
        [*launch, str(script), str(out), str(SEED)], capture_output=True, text=True, timeout=300, env=_env()
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    sharded = torch.load(out)
    reference = _unsharded_init(SMALL, SEED)
    for path in ("by_hand", "build_model"):
        assert list(sharded[path]) == list(reference), path
        for name, value in reference.items():
            assert torch.equal(sharded[path][name], value), (path, name)


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
