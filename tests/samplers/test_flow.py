import torch

from sana_wm.samplers import flow


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(2, 3, 4, 5, 6, generator=g, dtype=torch.float64)
    noise = torch.randn(2, 3, 4, 5, 6, generator=g, dtype=torch.float64)
    sigma_T = torch.rand(1, 1, 4, 1, 1, generator=g, dtype=torch.float64) * 0.9 + 0.05
    return x0, noise, sigma_T


def test_path_endpoints_are_data_and_noise() -> None:
    x0, noise, _ = _data()
    assert torch.equal(flow.interpolate(x0, noise, 0.0), x0)
    assert torch.equal(flow.interpolate(x0, noise, 1.0), noise)
    mid = flow.interpolate(x0, noise, 0.25)
    assert torch.allclose(mid, 0.75 * x0 + 0.25 * noise, atol=1e-15)


def test_velocity_target_is_the_sigma_derivative_of_the_path() -> None:
    x0, noise, sigma_T = _data(1)
    h = 1e-6
    fd = (flow.interpolate(x0, noise, sigma_T + h) - flow.interpolate(x0, noise, sigma_T - h)) / (2 * h)
    assert torch.allclose(fd, flow.velocity_target(x0, noise), atol=1e-8)


def test_conversions_round_trip_with_per_frame_sigma() -> None:
    x0, noise, sigma_T = _data(2)
    x_t = flow.interpolate(x0, noise, sigma_T)
    v = flow.velocity_target(x0, noise)
    assert torch.allclose(flow.x0_from_velocity(x_t, v, sigma_T), x0, atol=1e-12)
    assert torch.allclose(flow.noise_from_velocity(x_t, v, sigma_T), noise, atol=1e-12)
    assert torch.allclose(flow.velocity_from_x0(x_t, x0, sigma_T), v, atol=1e-12)


def test_one_euler_step_to_zero_with_the_true_velocity_lands_on_data() -> None:
    x0, noise, _ = _data(3)
    sigma = 0.7
    x_t = flow.interpolate(x0, noise, sigma)
    assert torch.allclose(x_t + (0.0 - sigma) * flow.velocity_target(x0, noise), x0, atol=1e-12)
