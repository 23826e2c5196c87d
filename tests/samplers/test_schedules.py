import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from sana_wm.errors import InputError
from sana_wm.samplers import flow_sigmas, flow_timesteps, shift_sigmas

CASES = [(60, 9.8), (60, 9.95), (50, 8.0), (1, 9.8), (2, 3.0), (7, 1.0), (13, 0.5), (1000, 9.8)]


@pytest.mark.parametrize("steps,shift", CASES)
def test_grid_matches_diffusers_scheduler_bit_for_bit(steps: int, shift: float) -> None:
    sched = FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(steps)
    sigmas = flow_sigmas(steps, shift)
    assert sigmas.dtype == torch.float32 and sigmas.shape == (steps + 1,)
    assert torch.equal(sigmas, sched.sigmas)
    assert torch.equal(flow_timesteps(sigmas), sched.timesteps)


def test_grid_matches_diffusers_with_other_train_timesteps() -> None:
    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=500, shift=6.0)
    sched.set_timesteps(24)
    sigmas = flow_sigmas(24, 6.0, num_train_timesteps=500)
    assert torch.equal(sigmas, sched.sigmas)
    assert torch.equal(flow_timesteps(sigmas, 500), sched.timesteps)


def test_double_shift_quirk_numbers_for_sana_wm_defaults() -> None:
    sigmas = flow_sigmas(60, 9.8)
    assert sigmas[0].item() == 1.0
    assert sigmas[1].item() == pytest.approx(0.9982611, abs=1e-7)
    assert sigmas[-2].item() == pytest.approx(0.0877046, abs=1e-7)
    assert sigmas[-1].item() == 0.0
    # The last non-zero level is the shift applied twice to 1/N; a single shift would have ended at 0.0097145.
    once = shift_sigmas(torch.tensor(1e-3, dtype=torch.float64), 9.8)
    assert once.item() == pytest.approx(0.0097145, abs=1e-7)
    assert sigmas[-2].item() == pytest.approx(shift_sigmas(once, 9.8).item(), abs=1e-7)


@pytest.mark.parametrize("steps,shift", CASES)
def test_grid_strictly_decreasing_from_one_to_zero(steps: int, shift: float) -> None:
    sigmas = flow_sigmas(steps, shift)
    assert sigmas[0].item() == pytest.approx(1.0, abs=1e-7)
    assert (sigmas[1:] < sigmas[:-1]).all()


def test_shift_fixed_points_and_inverse() -> None:
    s = torch.linspace(0, 1, 11, dtype=torch.float64)
    shifted = shift_sigmas(s, 4.0)
    assert shifted[0].item() == 0.0 and shifted[-1].item() == 1.0
    # shift(s) and shift(1/s) are inverse maps.
    assert torch.allclose(shift_sigmas(shifted, 0.25), s, atol=1e-15)


@pytest.mark.parametrize("steps,shift,name", [(0, 9.8, "num_steps"), (10, 0.0, "shift"), (10, -1.0, "shift")])
def test_bad_arguments_name_the_input(steps: int, shift: float, name: str) -> None:
    with pytest.raises(InputError, match=f"^{name}:"):
        flow_sigmas(steps, shift)
