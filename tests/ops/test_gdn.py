"""Frame-wise GDN scans: fast torch backend vs the per-frame reference, the diffusers oracle, a hand-derived
single-frame case, chunked-with-state vs one pass, and gradients."""

from __future__ import annotations

import pytest
import torch

from sana_wm.errors import InputError
from sana_wm.ops.gdn import GDNState, cam_bidirectional, cam_forward_scan, gdn_bidirectional, gdn_forward_scan
from sana_wm.ops.rope import apply_rope, rope_tables

HEIGHT, WIDTH = 3, 4


def _inputs(seed: int, frames: int, batch: int = 2, heads: int = 2, dim: int = 16) -> dict[str, torch.Tensor]:
    """Model-like ranges: ReLU'd q/k, keys scaled by 1/sqrt(E·S), betas in (0, 1), decays in (0.3, 1)."""
    gen = torch.Generator().manual_seed(seed)
    tokens = HEIGHT * WIDTH
    shape = (batch, heads, frames, tokens, dim)
    q = torch.relu(torch.randn(shape, generator=gen))
    k = torch.relu(torch.randn(shape, generator=gen)) * (dim * tokens) ** -0.5
    cos, sin = rope_tables(frames, HEIGHT, WIDTH, dim)

    def rotate(x: torch.Tensor) -> torch.Tensor:
        return apply_rope(x.flatten(2, 3), cos, sin).unflatten(2, (frames, tokens))

    return {
        "q": q,
        "k": k,
        "v": torch.randn(shape, generator=gen),
        "q_rot": rotate(q),
        "k_rot": rotate(k),
        "beta": torch.rand(shape[:-1], generator=gen),
        "decay": 0.3 + 0.7 * torch.rand(shape[:3], generator=gen),
    }


def _cam(x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"q": x["q_rot"], "k": x["k_rot"], "v": x["v"], "beta": x["beta"], "decay": x["decay"]}


@pytest.mark.parametrize("frames", [1, 2, 7])
def test_torch_backend_matches_reference(frames: int) -> None:
    x = _inputs(0, frames)
    ref = gdn_bidirectional(**x, eps=1e-8, backend="reference")
    fast = gdn_bidirectional(**x, eps=1e-8, backend="torch")
    assert (fast - ref).abs().max() < 1e-5 * ref.abs().max()
    ref_cam = cam_bidirectional(**_cam(x), backend="reference")
    fast_cam = cam_bidirectional(**_cam(x), backend="torch")
    assert (fast_cam - ref_cam).abs().max() < 1e-5 * ref_cam.abs().max()


def test_matches_diffusers_oracle() -> None:
    from diffusers.models.transformers import transformer_sana_wm as oracle

    frames, tokens = 5, HEIGHT * WIDTH
    x = _inputs(1, frames)
    b, n, t, s, e = x["q"].shape

    def bnm_e(tensor: torch.Tensor) -> torch.Tensor:  # (B, N, T, S, E) -> diffusers' (B, T·S, N, E)
        return tensor.permute(0, 2, 3, 1, 4).reshape(b, t * s, n, e)

    cos, sin = rope_tables(frames, HEIGHT, WIDTH, e)
    freqs = torch.polar(torch.ones_like(cos), torch.atan2(sin, cos))[None, None]
    # diffusers scales the keys by 1/sqrt(E·S) itself; hand it the unscaled ones.
    expected = oracle.SanaWMBidirectionalGDNAttention(eps=1e-8)(
        bnm_e(x["q"]),
        bnm_e(x["k"]) * (e * tokens) ** 0.5,
        bnm_e(x["v"]),
        x["beta"],
        x["decay"],
        torch.zeros(1),
        frames,
        rotary_emb=freqs,
    )
    got = gdn_bidirectional(**x, eps=1e-8, backend="torch")
    assert (got.permute(0, 2, 3, 1, 4).reshape(b, t * s, n * e) - expected).abs().max() < 1e-5

    def bn_em(tensor: torch.Tensor) -> torch.Tensor:  # diffusers' scan layout (B, N, E, T·S)
        return tensor.permute(0, 1, 4, 2, 3).reshape(b, n, e, t * s)

    cam = _cam(x)
    expected_cam = oracle.torch_chunk_cam_single_path_delta_rule(
        bn_em(cam["q"]), bn_em(cam["k"]), bn_em(cam["v"]), cam["beta"], cam["decay"]
    )
    got_cam, _ = cam_forward_scan(**cam, backend="reference")
    assert (bn_em(got_cam) - expected_cam).abs().max() < 1e-5


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_single_frame_closed_form(backend: str) -> None:
    """T = 1: the forward state is β·v·k̃ᵀ, z = Σβk; the backward one is empty. Hand-derived for 2 tokens."""
    q = torch.tensor([1.0, 2.0]).view(1, 1, 1, 1, 2).expand(1, 1, 1, 2, 2)
    k = torch.tensor([[0.5, 0.0], [0.0, 0.25]]).view(1, 1, 1, 2, 2)
    v = torch.tensor([[1.0, -1.0], [2.0, 3.0]]).view(1, 1, 1, 2, 2)
    beta = torch.tensor([0.5, 1.0]).view(1, 1, 1, 2)
    decay = torch.tensor([0.9]).view(1, 1, 1)
    out = gdn_bidirectional(q, k, v, q, k, beta, decay, eps=0.0, backend=backend)
    # M = 0.5·v0·k0ᵀ + 1·v1·k1ᵀ = [[0.25, 0.5], [-0.25, 0.75]]; z = 0.5·k0 + k1 = (0.25, 0.25).
    # Each token reads q = (1, 2): M·q = (1.25, 1.25), zᵀq = 0.75 -> 5/3 for both channels.
    assert torch.allclose(out, torch.full_like(out, 5.0 / 3.0))
    cam = cam_bidirectional(q, k, v, beta, decay, backend=backend)
    assert torch.allclose(cam, torch.full_like(cam, 1.25))


@pytest.mark.parametrize("backend", ["reference", "torch"])
@pytest.mark.parametrize("split", [1, 3])
def test_chunked_scan_with_carried_state_equals_one_pass(backend: str, split: int) -> None:
    x = _inputs(2, 7)
    num, den, state = gdn_forward_scan(**x, backend=backend)
    first = {key: value[:, :, :split] for key, value in x.items()}
    second = {key: value[:, :, split:] for key, value in x.items()}
    num_a, den_a, state_a = gdn_forward_scan(**first, backend=backend)
    num_b, den_b, state_b = gdn_forward_scan(**second, initial_state=state_a, backend=backend)
    assert torch.allclose(torch.cat([num_a, num_b], dim=2), num, atol=1e-6)
    assert torch.allclose(torch.cat([den_a, den_b], dim=2), den, atol=1e-6)
    assert torch.allclose(state_b.kv, state.kv, atol=1e-6) and torch.allclose(state_b.z, state.z, atol=1e-6)

    cam = _cam(x)
    out, cam_state = cam_forward_scan(**cam, backend=backend)
    out_a, state_a = cam_forward_scan(
        **{key: value[:, :, :split] for key, value in cam.items()}, backend=backend
    )
    out_b, state_b = cam_forward_scan(
        **{key: value[:, :, split:] for key, value in cam.items()}, initial_state=state_a, backend=backend
    )
    assert torch.allclose(torch.cat([out_a, out_b], dim=2), out, atol=1e-5)
    assert torch.allclose(state_b, cam_state, atol=1e-5)


def test_forward_scan_backends_agree_with_initial_state() -> None:
    x = _inputs(3, 5)
    gen = torch.Generator().manual_seed(9)
    b, n, _, _, e = x["q"].shape
    state = GDNState(kv=0.1 * torch.randn(b, n, e, e, generator=gen), z=torch.rand(b, n, e, generator=gen))
    ref = gdn_forward_scan(**x, initial_state=state, backend="reference")
    fast = gdn_forward_scan(**x, initial_state=state, backend="torch")
    for a, c in zip((*ref[:2], *ref[2]), (*fast[:2], *fast[2]), strict=True):
        assert (a - c).abs().max() < 1e-5 * a.abs().max()


def test_gradients_torch_matches_reference() -> None:
    x = _inputs(4, 4)
    grads = {}
    for backend in ("reference", "torch"):
        leaves = {key: value.clone().requires_grad_() for key, value in x.items()}
        out = gdn_bidirectional(**leaves, eps=1e-8, backend=backend)
        out_cam = cam_bidirectional(**_cam(leaves), backend=backend)
        weight = torch.linspace(-1, 1, out.numel()).view_as(out)
        ((out * weight).sum() + (out_cam * weight).sum()).backward()
        grads[backend] = {key: leaf.grad for key, leaf in leaves.items()}
    for key, ref in grads["reference"].items():
        assert (grads["torch"][key] - ref).abs().max() < 1e-4 * ref.abs().max(), key


def test_unknown_backend_is_an_input_error() -> None:
    with pytest.raises(InputError, match="backend: 'cuda'"):
        gdn_bidirectional(**_inputs(0, 2), eps=1e-8, backend="cuda")  # type: ignore[arg-type]
