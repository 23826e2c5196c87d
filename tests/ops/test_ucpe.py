"""UCPE geometry and transforms: diffusers oracle, hand-derived poses, relative-pose property, round trips."""

from __future__ import annotations

import pytest
import torch

from sana_wm.camera import compute_raymap
from sana_wm.ops.rope import camera_rope_tables, rope_tables
from sana_wm.ops.ucpe import invert_rigid, ray_matrices, rms_downscale, ucpe_transform


def _random_camera(seed: int, batch: int, frames: int, height: int, width: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(batch * frames, 3, 3, generator=gen))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    rot = q * torch.sign(torch.linalg.det(q))[:, None, None]
    pose = torch.eye(4).repeat(batch * frames, 1, 1)
    pose[:, :3, :3], pose[:, :3, 3] = rot, torch.randn(batch * frames, 3, generator=gen)
    focal = 2.0 + 6.0 * torch.rand(batch * frames, 2, generator=gen)
    centre = torch.tensor([width / 2, height / 2]) + torch.randn(batch * frames, 2, generator=gen)
    return torch.cat([pose.flatten(1), focal, centre], dim=-1).view(batch, frames, 20)


def test_ray_matrices_match_diffusers_oracle() -> None:
    from diffusers.models.transformers.transformer_sana_wm import _process_camera_conditions_ucpe

    camera = _random_camera(0, 2, 3, 4, 6)
    expected, _ = _process_camera_conditions_ucpe(camera, 2, (3, 4, 6), (1, 1, 1))
    assert (ray_matrices(camera, 4, 6) - expected).abs().max() < 1e-5


def test_identity_camera_principal_ray_is_the_world_frame_shifted_by_the_centre() -> None:
    """Identity rotation, ray through (cx, cy) = +Z: the ray frame is the camera frame; P = [I | −c]."""
    camera = torch.zeros(1, 1, 20)
    camera[0, 0, :16] = torch.eye(4).flatten()
    camera[0, 0, 3], camera[0, 0, 7], camera[0, 0, 11] = 1.0, -2.0, 0.5
    camera[0, 0, 16:] = torch.tensor([4.0, 4.0, 2.0, 1.0])
    P = ray_matrices(camera, 3, 5)[0, 0, 1, 2]
    expected = torch.eye(4)
    expected[:3, 3] = torch.tensor([-1.0, 2.0, -0.5])
    assert torch.allclose(P, expected, atol=1e-6)


def test_ray_frames_point_along_the_plucker_rays() -> None:
    """One pixel-ray definition (``sana_wm.camera.rays``): the ray frame's z axis is the Plücker direction."""
    camera = _random_camera(4, 2, 3, 4, 6)
    P = ray_matrices(camera, 4, 6)  # (B, T, h, w, 4, 4), rows x, y, z of the ray frame
    c2w, intrinsics = camera[..., :16].unflatten(-1, (4, 4)), camera[..., 16:]
    rays = compute_raymap(intrinsics.flatten(0, 1), c2w.flatten(0, 1), 4, 6).unflatten(0, (2, 3))
    assert (P[..., 2, :3] - rays[..., :3]).abs().max() < 1e-6


def test_invert_rigid() -> None:
    P = ray_matrices(_random_camera(1, 1, 2, 3, 3), 3, 3)
    assert torch.allclose(P @ invert_rigid(P), torch.eye(4).expand_as(P), atol=1e-5)


def _transforms(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    P = ray_matrices(_random_camera(seed, 1, 2, 2, 3), 2, 3).flatten(1, 3)  # (1, 12, 4, 4)
    cos, sin = camera_rope_tables(*rope_tables(2, 2, 3, 16), 16)
    return P, cos, sin


@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_query_key_products_depend_on_relative_pose_only(backend: str) -> None:
    """First half: (P_iᵀ q)·(P_j⁻¹ k) = qᵀ P_i P_j⁻¹ k, group by group."""
    P, cos, sin = _transforms(2)
    gen = torch.Generator().manual_seed(3)
    q, k = torch.randn(2, 1, 1, 12, 16, generator=gen)
    tq = ucpe_transform(q, P.transpose(-1, -2), cos, sin, backend=backend)[0, 0, :, :8]
    tk = ucpe_transform(k, invert_rigid(P), cos, sin, backend=backend)[0, 0, :, :8]
    i, j = 4, 9
    relative = P[0, i] @ invert_rigid(P[0, j])
    expected = sum(q[0, 0, i, g : g + 4] @ relative @ k[0, 0, j, g : g + 4] for g in (0, 4))
    assert (tq[i] @ tk[j]).item() == pytest.approx(expected.item(), rel=1e-5)


def test_backends_agree_and_output_transform_undoes_value_transform() -> None:
    P, cos, sin = _transforms(4)
    v = torch.randn(1, 2, 12, 16, generator=torch.Generator().manual_seed(5))
    encoded = {b: ucpe_transform(v, invert_rigid(P), cos, sin, backend=b) for b in ("reference", "torch")}
    assert (encoded["reference"] - encoded["torch"]).abs().max() < 1e-5
    decoded = ucpe_transform(encoded["torch"], P, cos, sin, conjugate=True)
    assert torch.allclose(decoded, v, atol=1e-5)


def test_rms_downscale_matches_diffusers_oracle_and_never_scales_up() -> None:
    from diffusers.models.transformers.transformer_sana_wm import _downscale_to_reference_rms

    gen = torch.Generator().manual_seed(6)
    ref = torch.randn(2, 3, 10, 16, generator=gen)
    x = ref * torch.rand(2, 3, 10, 1, generator=gen) * 3
    got = rms_downscale(ref, x)
    expected = _downscale_to_reference_rms(ref.transpose(-1, -2), x.transpose(-1, -2)).transpose(-1, -2)
    assert torch.allclose(got, expected, atol=1e-6)
    assert (got.norm(dim=-1) <= x.norm(dim=-1) + 1e-6).all()
    assert (got.norm(dim=-1) <= ref.norm(dim=-1) * 1.0001).all()
