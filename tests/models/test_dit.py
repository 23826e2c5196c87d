"""Training readiness of the transformer: meta-device init, bf16, memory plans, input errors.

Activation checkpointing and sharded init are applied from ``sana_wm.train.parallel`` and tested in
``tests/train/test_parallel.py``."""

from __future__ import annotations

import pytest
import torch
from helpers.parity import perturb_all_parameters, random_inputs

from sana_wm.errors import InputError
from sana_wm.models import MemoryPlan, SanaWMTransformer, tiny
from sana_wm.models.attention import OUTPUT_GATE_INIT_BIAS


def _perturbed_tiny(seed: int = 0) -> SanaWMTransformer:
    torch.manual_seed(seed)
    model = SanaWMTransformer(tiny())
    perturb_all_parameters(model, seed)
    return model


def test_meta_construction_then_init_is_deterministic() -> None:
    states = []
    for _ in range(2):
        with torch.device("meta"):
            model = SanaWMTransformer(tiny())
        assert all(p.is_meta for p in model.parameters())
        model.to_empty(device="cpu")
        torch.manual_seed(123)
        model.init_weights()
        states.append(model.state_dict())
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key


def test_init_weights_writes_every_parameter_and_buffer() -> None:
    """``to_empty`` leaves garbage: NaN-poisoned, every tensor is overwritten, each module by its own init."""
    with torch.device("meta"):
        model = SanaWMTransformer(tiny())
    model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            tensor.fill_(float("nan"))
    torch.manual_seed(0)
    model.init_weights()
    for name, tensor in model.state_dict().items():
        assert not tensor.isnan().any(), name


def test_init_does_not_depend_on_dtype() -> None:
    """Random values are drawn in fp32 on the CPU whatever the parameters' dtype: a bf16 model gets the fp32
    model's values rounded."""
    models = []
    for dtype in (torch.float32, torch.bfloat16):
        with torch.device("meta"):
            model = SanaWMTransformer(tiny())
        model.to_empty(device="cpu").to(dtype)
        torch.manual_seed(5)
        model.init_weights()
        models.append(model)
    full, half = (m.state_dict() for m in models)
    for name, value in full.items():
        assert torch.equal(value.bfloat16(), half[name]), name


def test_official_init_values() -> None:
    torch.manual_seed(0)
    model = SanaWMTransformer(tiny())
    attn = model.blocks[0].attn
    assert torch.all(attn.out_proj_cam.weight == 0) and torch.all(attn.output_gate.weight == 0)
    assert torch.nn.functional.silu(torch.tensor(OUTPUT_GATE_INIT_BIAS)).item() == pytest.approx(
        1.0, abs=1e-7
    )
    assert torch.equal(attn.k_proj_cam.weight, attn.qkv.weight[224:448])
    assert attn.conv_k.weight[:, 0].tolist() == [[0.0, 0.0, 0.0, 1.0]] * 224
    assert torch.all(model.plucker_embedder.proj.weight == 0)
    assert model.attention_y_norm.weight[0].item() == pytest.approx(0.01)


def test_camera_path_is_silent_at_init() -> None:
    """Zero ``out_proj_cam`` and Plücker embedder: at init the output does not depend on the camera inputs."""
    torch.manual_seed(0)
    model = SanaWMTransformer(tiny())
    a, b = random_inputs(0, 1, 3, 2, 3), random_inputs(1, 1, 3, 2, 3)
    with torch.no_grad():
        out_a = model(**a)
        out_b = model(
            **{**a, "camera_conditions": b["camera_conditions"], "chunk_plucker": b["chunk_plucker"]}
        )
    assert torch.equal(out_a, out_b)
    assert out_a.abs().max() > 0


def test_bf16_forward_tracks_fp32() -> None:
    """bf16 weights with the fp32 residual stream and fp32 outer modules: 4.8e-3 here, where rounding the
    stream and the embedders to bf16 as diffusers does gave 8.0e-3. The velocity comes out in fp32."""
    model = _perturbed_tiny()
    inputs = random_inputs(2, 1, 3, 2, 3)
    with torch.no_grad():
        ref = model(**inputs)
        got = model.to(torch.bfloat16)(**inputs)
    assert got.dtype == torch.float32
    rel = (got - ref).norm() / ref.norm()
    assert rel < 6e-3


@pytest.mark.parametrize(
    ("name", "bad", "message"),
    [
        ("latents", torch.zeros(1, 15, 3, 2, 3), "latents: expected"),
        ("timestep", torch.zeros(1, 3), "timestep: expected shape"),
        ("text", torch.zeros(1, 1, 12, 64), "text: expected"),
        ("camera_conditions", torch.zeros(1, 3, 16), "camera_conditions: expected shape"),
        ("chunk_plucker", torch.zeros(1, 48, 2, 2, 3), "chunk_plucker: expected shape"),
    ],
)
def test_bad_input_shapes_name_the_input(name: str, bad: torch.Tensor, message: str) -> None:
    torch.manual_seed(0)
    model = SanaWMTransformer(tiny())
    with pytest.raises(InputError, match=message):
        model(**{**random_inputs(0, 1, 3, 2, 3), name: bad})


@pytest.mark.parametrize(
    "plan",
    [
        MemoryPlan(heads_per_chunk=1, ffn_frames_per_chunk=2, samples_per_pass=1),
        MemoryPlan(ffn_frames_per_chunk=1),
        MemoryPlan(heads_per_chunk=1, ffn_frames_per_chunk=4),
        MemoryPlan.lean(),
    ],
)
def test_memory_plans_equal_one_shot_forward_and_gradients(plan: MemoryPlan) -> None:
    """Chunked heads / FFN frames / batch passes give the one-shot output and gradients (fp32)."""
    model = _perturbed_tiny(3)
    inputs = random_inputs(4, 2, 5, 2, 3)
    results = []
    for memory in (None, plan):
        model.zero_grad()
        out = model(**inputs, memory=memory)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        results.append(
            (out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        )
    (out_a, grads_a), (out_b, grads_b) = results
    scale = out_a.abs().max()
    assert (out_a - out_b).abs().max() <= 2e-6 * scale
    assert grads_a.keys() == grads_b.keys()
    for name, grad in grads_a.items():
        assert (grad - grads_b[name]).abs().max() <= 1e-5 * grad.abs().max() + 1e-12, name


def test_ffn_temporal_part_equals_the_checkpoint_conv() -> None:
    """The per-tap matmuls over frames equal the stored (k, 1) Conv2d, frame-chunked or not, for 3 and 5 taps
    (5 taps on 2-frame chunks: taps reaching past both ends of the clip)."""
    from sana_wm.models.dit import GLUMBConvTemp

    torch.manual_seed(0)
    for taps in (3, 5):
        ffn = GLUMBConvTemp(8, 12, taps)
        y_BTSD = torch.randn(2, 5, 6, 8)
        conv = ffn.t_conv(y_BTSD.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        weight_KDD = ffn.t_conv.weight[..., 0].permute(2, 0, 1).contiguous()
        for start, stop in ((0, 5), (0, 2), (2, 4), (4, 5), (1, 2)):
            got = torch.full_like(y_BTSD, float("nan"))
            ffn._temporal(y_BTSD, weight_KDD, got, start, stop)
            want = y_BTSD[:, start:stop] + conv[:, start:stop]
            assert (got[:, start:stop] - want).abs().max() < 1e-5, (taps, start, stop)
            assert got[:, :start].isnan().all() and got[:, stop:].isnan().all()


def test_memory_plan_rejects_bad_values() -> None:
    with pytest.raises(InputError, match="memory.heads_per_chunk"):
        MemoryPlan(heads_per_chunk=0)


def test_named_memory_plans() -> None:
    assert MemoryPlan.named("none") is None
    assert MemoryPlan.named("lean") == MemoryPlan(heads_per_chunk=5, ffn_frames_per_chunk=16)
    assert MemoryPlan.named("lean-serial") == MemoryPlan(
        heads_per_chunk=5, ffn_frames_per_chunk=16, samples_per_pass=1
    )
    assert MemoryPlan.named("10,32") == MemoryPlan(heads_per_chunk=10, ffn_frames_per_chunk=32)
    assert MemoryPlan.named("4, 8, 1") == MemoryPlan(4, 8, 1)
    with pytest.raises(InputError, match="memory plan: 'tiny'"):
        MemoryPlan.named("tiny")
    for bad in ("1,2,3,4", "5", "a,b"):
        with pytest.raises(InputError, match="memory plan"):
            MemoryPlan.named(bad)
    with pytest.raises(InputError, match="memory.heads_per_chunk"):
        MemoryPlan.named("0,16")
