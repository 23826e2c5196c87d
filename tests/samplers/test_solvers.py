import functools
import math

import PIL.Image
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, SanaWMPipeline

from sana_wm.samplers import cfg_model_fn, flow_sigmas, sample_euler, sample_heun, sample_ltx_euler
from sana_wm.tiny import tiny_ltx2_vae

SOLVERS = [sample_ltx_euler, sample_euler, sample_heun]


class LinearVelocity(torch.nn.Module):
    """Deterministic random stand-in for the DiT: channel mixing + per-frame timestep term + text term.

    Called like the diffusers transformer: ``(x_BCTHW, timestep_B1T, text_B1LD, return_dict=False) -> (v,)``.
    """

    def __init__(self, channels: int, seed: int, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter((torch.randn(channels, channels, generator=g) * 0.4).to(dtype))
        self.b = torch.nn.Parameter(torch.randn(channels, generator=g).to(dtype))
        self.calls: list[torch.Tensor] = []

    @property
    def device(self) -> torch.device:
        return self.w.device

    @property
    def dtype(self) -> torch.dtype:
        return self.w.dtype

    def forward(
        self, x: torch.Tensor, timestep: torch.Tensor, text: torch.Tensor, return_dict: bool = False, **_
    ):
        self.calls.append(timestep.clone())
        t = (timestep.to(self.dtype) / 1000)[:, :, :, None, None]
        text_term = text.mean(dim=(1, 2, 3)).to(self.dtype)[:, None, None, None, None]
        v = torch.einsum("oc,bcthw->bothw", self.w, x) + self.b[None, :, None, None, None] * t + text_term
        return (v,)


def _reference_ltx_loop(model_pair, x, cond_mask_T, steps, shift, scale):
    """Official SANA-WM sampling loop, run through diffusers' FlowMatchEulerDiscreteScheduler (the oracle).

    As in the official LTXFlowEuler the condition mask is float32. (diffusers' SanaWMPipeline builds it in the
    latent dtype instead; in bf16 its keep-test ``t/1000 - 1e-6 < 1`` then rounds to ``1 < 1`` for
    t > 998.05, so it skips the first steps. Our sampler follows the official code.)
    """
    sched = FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(steps)
    latents, dtype = x.clone(), x.dtype
    cond = torch.zeros_like(latents, dtype=torch.float32)
    cond[:, :, cond_mask_T.bool()] = 1.0
    b, c, f, h, w = latents.shape
    for t in sched.timesteps:
        cond2 = torch.cat([cond, cond])
        timestep = torch.min(t.expand(cond2.shape).float(), (1.0 - cond2) * 1000.0)
        v_u, v_c = model_pair(torch.cat([latents, latents]), timestep[:, :1, :, 0, 0]).chunk(2)
        v = v_u + scale * (v_c - v_u)
        per_token = timestep.chunk(2)[0].reshape(b, c, -1)[:, 0]
        out = sched.step(
            -v.reshape(b, c, -1).transpose(1, 2),
            t,
            latents.reshape(b, c, -1).transpose(1, 2),
            per_token_timesteps=per_token,
            return_dict=False,
        )[0]
        out = out.transpose(1, 2).reshape(b, c, f, h, w)
        latents = torch.where(t / 1000.0 - 1e-6 < (1.0 - cond), out, latents).to(dtype)
    return latents


@pytest.mark.parametrize(
    "steps,shift,dtype,batch",
    [
        (60, 9.8, torch.float32, 1),
        (8, 3.0, torch.float32, 2),
        (20, 9.95, torch.bfloat16, 1),
        (5, 1.0, torch.bfloat16, 2),
    ],
)
def test_ltx_euler_matches_diffusers_scheduler_loop(steps, shift, dtype, batch) -> None:
    g = torch.Generator().manual_seed(steps)
    model = LinearVelocity(6, seed=steps, dtype=dtype)
    text = torch.randn(2 * batch, 1, 5, 4, generator=g).to(dtype)
    text[:batch] *= 0.3  # negative prompt rows differ from positive rows

    def model_pair(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model(x, t, text)[0]

    x = torch.randn(batch, 6, 4, 3, 5, generator=g).to(dtype)
    mask_T = torch.tensor([1.0, 0.0, 0.0, 0.0])
    ref = _reference_ltx_loop(model_pair, x, mask_T, steps, shift, 5.0)
    ours = sample_ltx_euler(cfg_model_fn(model_pair, 5.0), x, flow_sigmas(steps, shift), cond_mask_T=mask_T)
    assert ours.dtype == dtype
    assert (ours.float() - ref.float()).abs().max().item() <= 1e-6
    assert torch.equal(ours[:, :, 0], x[:, :, 0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_ltx_euler_matches_the_sana_wm_pipeline_end_to_end(dtype: torch.dtype) -> None:
    steps = 12 if dtype == torch.float32 else 60
    model = LinearVelocity(8, seed=3, dtype=dtype)
    pipe = SanaWMPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=tiny_ltx2_vae(8, seed=0),
        transformer=model,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=9.8),
    )
    pipe.set_progress_bar_config(disable=True)
    g = torch.Generator().manual_seed(7)
    pos, neg = torch.randn(1, 1, 16, 4, generator=g), torch.randn(1, 1, 16, 4, generator=g)
    mask = torch.ones(1, 16, dtype=torch.long)
    image = PIL.Image.fromarray((torch.rand(64, 96, 3, generator=g) * 255).to(torch.uint8).numpy())
    # The pipeline's first model input is [x_init, x_init]: its noise with the encoded first frame pinned.
    inputs: list[torch.Tensor] = []
    hook = model.register_forward_pre_hook(lambda m, args: inputs.append(args[0][:1].clone()))
    with torch.no_grad():
        out = pipe(
            image=image,
            prompt="unused",
            action="w-40",
            intrinsics=[80.0, 80.0, 48.0, 32.0],
            height=64,
            width=96,
            num_frames=33,
            num_inference_steps=steps,
            guidance_scale=5.0,
            prompt_embeds=pos,
            prompt_attention_mask=mask,
            negative_prompt_embeds=neg,
            negative_prompt_attention_mask=mask,
            generator=torch.Generator().manual_seed(1),
            output_type="latent",
        )
    hook.remove()
    assert len(model.calls) == steps
    assert torch.equal(model.calls[0][:, 0], torch.tensor([[0.0, 1000, 1000, 1000, 1000]] * 2))
    text = torch.cat([neg, pos])

    def model_pair(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model(x, t, text)[0]

    sigmas = flow_sigmas(steps, 9.8)
    if dtype == torch.bfloat16:
        # diffusers 0.42.1 keeps its condition mask in the latent dtype, so in bf16 its update test
        # t/1000 - 1e-6 < 1 - mask rounds to 1 < 1 for the first two steps (t = 1000, 998.26) and skips
        # them; the official sampler (float32 mask) and ours do not. Dropping them reproduces diffusers.
        assert torch.equal(inputs[0], inputs[2])
        sigmas = sigmas[2:]
    with torch.no_grad():
        ours = sample_ltx_euler(
            cfg_model_fn(model_pair, 5.0), inputs[0], sigmas, cond_mask_T=torch.tensor([1.0, 0, 0, 0, 0])
        )
    assert (ours.float() - out.latent.float()).abs().max().item() <= 1e-6
    assert torch.equal(ours[:, :, 0], inputs[0][:, :, 0])


def _point_mass_velocity(x0: torch.Tensor, log: list[torch.Tensor] | None = None):
    """Exact velocity field when all data is the single point x0: v(x, σ) = (x - x0) / σ (0 at σ = 0)."""

    def model_fn(x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        if log is not None:
            log.append(timestep.clone())
        sigma = (timestep / 1000)[:, :, :, None, None]
        return torch.where(sigma > 0, (x - x0) / sigma.clamp_min(1e-30), torch.zeros_like(x))

    return model_fn


IRREGULAR = torch.tensor([1.0, 0.93, 0.7, 0.66, 0.31, 0.3, 0.05, 0.0])


@pytest.mark.parametrize("solver", SOLVERS)
@pytest.mark.parametrize(
    "sigmas", [flow_sigmas(60, 9.8), flow_sigmas(3, 1.0), IRREGULAR], ids=["60", "3", "irr"]
)
def test_point_mass_data_is_reached_exactly_from_any_grid(solver, sigmas) -> None:
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 4, 3, 2, 5, generator=g)
    x = torch.randn(2, 4, 3, 2, 5, generator=g)
    out = solver(_point_mass_velocity(x0), x, sigmas)
    assert (out - x0).abs().max().item() <= 2e-5


@pytest.mark.parametrize("solver", SOLVERS)
def test_conditioning_frames_get_timestep_zero_and_never_move(solver) -> None:
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(1, 4, 5, 2, 3, generator=g)
    x = torch.randn(1, 4, 5, 2, 3, generator=g)
    x[:, :, 0], x[:, :, 3] = x0[:, :, 0] + 0.5, x0[:, :, 3] - 0.25  # pinned frames deliberately off x0
    log: list[torch.Tensor] = []
    sigmas = flow_sigmas(6, 5.0)
    mask_T = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0])
    out = solver(_point_mass_velocity(x0, log), x, sigmas, cond_mask_T=mask_T)
    assert torch.equal(out[:, :, [0, 3]], x[:, :, [0, 3]])
    assert (out[:, :, [1, 2, 4]] - x0[:, :, [1, 2, 4]]).abs().max().item() <= 2e-5
    first = log[0][0, 0]
    assert torch.equal(first, torch.tensor([0.0, 1000.0, 1000.0, 0.0, 1000.0]))
    assert all(torch.equal(t[0, 0, [0, 3]], torch.zeros(2)) for t in log)


def _linear_ode_error(solver, steps: int) -> float:
    """dx/dσ = (1 + σ) x from σ = 1 to 0 has x(0) = x(1) exp(-1.5); max error on a uniform grid."""

    def model_fn(x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return (1 + timestep / 1000)[:, :, :, None, None] * x

    x1 = torch.linspace(-2.0, 2.0, 6).view(1, 1, 6, 1, 1)
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    out = solver(model_fn, x1, sigmas)
    return (out - x1 * math.exp(-1.5)).abs().max().item()


@pytest.mark.parametrize("solver,order", [(sample_euler, 1), (sample_ltx_euler, 1), (sample_heun, 2)])
def test_convergence_order_on_a_linear_ode(solver, order: int) -> None:
    # Error ratio when halving the step: 2 for a first-order method, 4 for a second-order one.
    errors = [_linear_ode_error(solver, n) for n in (32, 64, 128)]
    ratios = [errors[0] / errors[1], errors[1] / errors[2]]
    assert all(abs(r - 2**order) < 0.1 * 2**order for r in ratios), (errors, ratios)


def test_model_calls_and_progress_wrapper() -> None:
    calls = {"n": 0}

    def model_fn(x: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return -x

    seen: list[int] = []

    def progress(steps):
        for i in steps:
            seen.append(i)
            yield i

    x = torch.ones(1, 1, 2, 1, 1)
    for solver, expected in [(sample_euler, 7), (sample_ltx_euler, 7), (sample_heun, 13)]:
        calls["n"], seen[:] = 0, []
        solver(model_fn, x, flow_sigmas(7, 3.0), progress=progress)
        assert calls["n"] == expected and seen == list(range(7))
    tqdm = pytest.importorskip("tqdm").tqdm
    bar = functools.partial(tqdm, disable=True)
    plain = sample_heun(model_fn, x, flow_sigmas(3, 1.0))
    assert torch.equal(sample_heun(model_fn, x, flow_sigmas(3, 1.0), progress=bar), plain)
    assert (plain - x).abs().max().item() > 0.1


def test_plain_and_ltx_euler_agree_to_rounding() -> None:
    model = LinearVelocity(4, seed=11)
    text = torch.randn(1, 1, 3, 2, generator=torch.Generator().manual_seed(2))

    def model_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model(x, t, text)[0]

    x = torch.randn(1, 4, 3, 2, 2, generator=torch.Generator().manual_seed(3))
    mask_T = torch.tensor([1.0, 0.0, 0.0])
    with torch.no_grad():
        a = sample_euler(model_fn, x, flow_sigmas(30, 9.8), cond_mask_T=mask_T)
        b = sample_ltx_euler(model_fn, x, flow_sigmas(30, 9.8), cond_mask_T=mask_T)
    assert (a - b).abs().max().item() <= 1e-5
    assert (a - x).abs().max().item() > 0.1
