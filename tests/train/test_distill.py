"""The distillation modes' numbers: the DMD gradient on Gaussians with analytic scores, ODE pairs that are the
teacher's sampler, and official-layout checkpoints as generator, teacher and critic by configuration."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers.checkpoints import official_layout
from helpers.training import REPO
from safetensors.torch import load_file, save_file

from sana_wm.cli import main
from sana_wm.models import SanaWMTransformer, load_transformer, save_transformer
from sana_wm.models.causal import ChunkLayout
from sana_wm.samplers.chunked import chunk_starts, sample_chunk_flow_euler
from sana_wm.samplers.flow import interpolate
from sana_wm.samplers.schedules import flow_sigmas
from sana_wm.train import Trainer, read_metrics, train
from sana_wm.train.config import apply_overrides, load_recipe
from sana_wm.train.dataset import collate
from sana_wm.train.dmd import Conditioning, DMDConfig, dmd_direction, dmd_loss, real_x0, score_sigma, score_x0
from sana_wm.train.ode import ODEPairs, clip_noise, merged_grid, ode_inputs, teacher_trajectory

RECIPE = REPO / "recipes" / "debug_distill.py"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny forwards: one intra-op thread (on a busy CPU more threads only wait for each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def recipe(name: str, tmp_path, *overrides: str):
    return apply_overrides(load_recipe(f"{RECIPE}:{name}"), [f"out_dir={tmp_path / name}", *overrides])


def gaussian_x0(x_t: torch.Tensor, sigma: float, mean: float, std: float = 1.0) -> torch.Tensor:
    """E[x0 | x_σ] for x0 ~ N(mean, std²) on the path x_σ = (1 − σ) x0 + σ ε."""
    a = 1.0 - sigma
    return mean + a * std**2 / (a * a * std**2 + sigma**2) * (x_t - a * mean)


def test_dmd_gradient_on_gaussians_with_analytic_scores() -> None:
    """Real N(1, 1) with guidance against N(0, 1), fake N(−0.5, 1), σ = 0.5: x0_fake − x0_real is −0.75
    without guidance and −2.25 with g = 3; the generator's gradient is that over mean|gen − x0_real|, over
    the elements averaged, zero on frame 0."""
    torch.manual_seed(0)
    gen = torch.randn(2, 3, 4, 2, 2, requires_grad=True)
    noise = torch.randn(2, 3, 4, 2, 2)
    sigma_B1T = torch.full((2, 1, 4), 0.5)
    sigma_B1T[:, :, 0] = 0.0
    noisy = interpolate(gen.detach(), noise, sigma_B1T[:, :, :, None, None])
    s = sigma_B1T[:, :, :, None, None]
    # Analytic scores as models (velocity (x − x0)/σ; frame 0 at σ = 0 returns x0 = x whatever v is).
    models = {
        mean: (lambda x, t, *args, mean=mean: (x - gaussian_x0(x, s, mean)) / s.clamp_min(1e-12))
        for mean in (1.0, 0.0, -0.5)
    }
    cond = Conditioning(text=torch.zeros(2, 1, 1), text_mask=torch.ones(2, 1), camera=None, plucker=None)
    x0 = {m: score_x0(models[m], noisy, sigma_B1T, cond.text, cond) for m in models}
    mask = torch.ones(2, 4)
    mask[:, 0] = 0.0
    for scale, expected in ((0.0, -0.75), (3.0, -2.25)):
        x0_real = real_x0(x0[1.0], x0[0.0], scale)
        assert torch.allclose((x0[-0.5] - x0_real)[:, :, 1:], torch.tensor(expected), atol=1e-5)
        assert torch.equal((x0[-0.5] - x0_real)[:, :, 0], torch.zeros(2, 3, 2, 2))
        gen.grad = None
        loss = dmd_loss(gen, x0[-0.5], x0_real, mask)
        loss.backward()
        normaliser = (gen.detach() - x0_real).abs().mean(dim=(1, 2, 3, 4))  # per sample
        per_element = expected / normaliser / (2 * 3 * 3 * 2 * 2)  # B · C · loss frames · h · w
        assert torch.allclose(
            gen.grad[:, :, 1:], per_element[:, None, None, None, None].expand(2, 3, 3, 2, 2)
        )
        assert torch.equal(gen.grad[:, :, 0], torch.zeros(2, 3, 2, 2))
        g = dmd_direction(gen.detach(), x0[-0.5], x0_real)
        assert loss.detach().item() == pytest.approx(0.5 * float((g[:, :, 1:] ** 2).mean()), rel=1e-6)


def test_dmd_moves_a_gaussian_generator_onto_the_real_one() -> None:
    """A generator x = μ + z with a perfect critic (N(μ, 1)) and real score N(2, 1): 30 SGD steps on the
    DMD loss take μ from 0 to 2 (the fixed point: fake = real)."""
    mu = torch.zeros((), requires_grad=True)
    opt = torch.optim.SGD([mu], lr=0.5)
    rng = torch.Generator().manual_seed(0)
    for _ in range(30):
        gen = mu + torch.randn(1, 1, 2, 8, 8, generator=rng)
        sigma = float(torch.rand((), generator=rng)) * 0.9 + 0.05
        noisy = interpolate(gen.detach(), torch.randn(gen.shape, generator=rng), sigma)
        x0_fake, x0_real = gaussian_x0(noisy, sigma, mu.item()), gaussian_x0(noisy, sigma, 2.0)
        opt.zero_grad()
        dmd_loss(gen, x0_fake, x0_real, torch.ones(1, 2)).backward()
        opt.step()
    assert mu.item() == pytest.approx(2.0, abs=1e-4)


def test_score_timesteps_follow_the_official_shift_and_clamp() -> None:
    cfg = DMDConfig()
    draws = [score_sigma(np.random.default_rng(i), cfg) for i in range(200)]
    assert min(draws) >= 0.02 and max(draws) <= 0.98
    u = np.random.default_rng(7).integers(1000) / 1000
    assert score_sigma(np.random.default_rng(7), cfg) == pytest.approx(
        min(max(10 * u / (1 + 9 * u), 0.02), 0.98)
    )


def _prefix_fn(model: SanaWMTransformer, cond: dict):
    def fn(prefix, t_B1T, starts):
        end = prefix.shape[2]
        return model(
            prefix,
            t_B1T,
            cond["text"],
            cond["text_mask"],
            cond["camera_conditions"][:, :end],
            cond["chunk_plucker"][:, :, :end],
            chunks=ChunkLayout(tuple(starts)),
        )

    return fn


@torch.no_grad()
def test_teacher_trajectory_is_the_teacher_sampler(tmp_path) -> None:
    """Snapshot 0 is the noise, the last is ``sample_chunk_flow_euler``'s output bit for bit, and the first
    chunk's snapshots equal the sampler stopped at each level (that chunk never sees the later one)."""
    cfg = recipe("debug_ode_pairs", tmp_path)
    torch.manual_seed(1)
    model = SanaWMTransformer(cfg.model).eval()
    data = collate([SyntheticClipsFor(cfg)[i] for i in (0, 1)])
    initial = torch.randn(data["latents"].shape)
    initial[:, :, 0] = data["latents"][:, :, 0]
    sigmas = cfg.ode.sigmas()
    grid = merged_grid(flow_sigmas(6, 3.0), sigmas)
    starts = chunk_starts(5, 2)
    assert starts == [0, 3]
    fn = _prefix_fn(model, data)
    snaps = teacher_trajectory(fn, initial, grid, sigmas, starts)
    cond_mask = torch.zeros(5)
    cond_mask[0] = 1
    assert torch.equal(
        snaps[:, -1], sample_chunk_flow_euler(fn, initial, grid, starts, cond_mask_T=cond_mask)
    )
    assert torch.equal(snaps[:, 0, :, 1:], initial[:, :, 1:])
    for k, sigma in enumerate(sigmas.tolist()):
        assert torch.equal(snaps[:, k, :, 0], initial[:, :, 0])
        stop = int((grid == sigma).nonzero()) + 1
        alone = sample_chunk_flow_euler(fn, initial[:, :, :3], grid[:stop], [0], cond_mask_T=cond_mask[:3])
        assert torch.allclose(snaps[:, k, :, :3], alone, atol=1e-5), k


def SyntheticClipsFor(cfg):  # noqa: N802
    from sana_wm.train import SyntheticClips

    d = cfg.data
    return SyntheticClips(
        d.num_clips,
        channels=cfg.model.in_channels,
        frames=d.frames,
        height=d.height,
        width=d.width,
        text_tokens=d.text_tokens,
        caption_channels=cfg.model.caption_channels,
        seed=cfg.seed,
    )


def test_ode_inputs_mix_snapshots_per_chunk() -> None:
    traj = torch.arange(5.0)[None, :, None, None, None, None].expand(2, 5, 1, 5, 1, 1).clone()
    sigmas = torch.tensor([1.0, 0.967, 0.908, 0.764, 0.0])
    rngs = [np.random.default_rng([3, b]) for b in range(2)]
    inputs = ode_inputs(traj, sigmas, [0, 3], rngs)
    for b in range(2):
        rng = np.random.default_rng([3, b])
        k = [int(rng.integers(5)) for _ in range(2)]
        expected = [4, k[0], k[0], k[1], k[1]]
        assert inputs.noisy[b, 0, :, 0, 0].tolist() == expected
        assert inputs.sigma[b, 0].tolist() == sigmas[expected].tolist()
        assert inputs.loss_mask[b].tolist() == [float(sigmas[e] > 0) for e in expected]
    assert torch.equal(inputs.target, traj[:, -1])


def _official_files(tmp_path, cfg):
    """A chunk-causal teacher and a bidirectional model at the debug sizes, in the official key layouts (the
    chunk-causal release's bare keys; the bidirectional one's ``model.`` prefix), and the same in ours."""
    torch.manual_seed(5)
    causal = SanaWMTransformer(cfg.model)
    bidirectional = SanaWMTransformer(dataclasses.replace(cfg.model, chunk_size=None))
    files = {
        "causal_official": tmp_path / "chunk_causal_official.safetensors",
        "bidirectional_official": tmp_path / "bidirectional_official.safetensors",
        "causal_ours": tmp_path / "causal_ours.safetensors",
        "bidirectional_ours": tmp_path / "bidirectional_ours.safetensors",
    }
    save_file(official_layout(causal, ""), str(files["causal_official"]))
    save_file(official_layout(bidirectional, "model."), str(files["bidirectional_official"]))
    save_transformer(causal, files["causal_ours"])
    save_transformer(bidirectional, files["bidirectional_ours"])
    return causal, bidirectional, files


def test_ode_pairs_mode_from_the_official_chunk_causal_teacher(tmp_path) -> None:
    """The ode_pairs run with the official-layout teacher: its shards hold, for every clip, the staircase
    sampler's trajectory from ``clip_noise`` (endpoint bit for bit) with the clip's conditioning."""
    cfg = recipe("debug_ode_pairs", tmp_path)
    teacher, _, files = _official_files(tmp_path, cfg)
    # One clip per teacher call, as the sampler is run below (a batch of two rounds differently).
    cfg = apply_overrides(cfg, [f"ode.teacher_from={files['causal_official']}", "ode.batch_size=1"])
    assert train(cfg).step == 3  # 8 clips in shards of 3
    pairs = ODEPairs(tmp_path / "debug_ode_pairs" / "ode_pairs")
    assert len(pairs) == 8 and pairs.step_list == "1000,967,908,764,0"
    clips = SyntheticClipsFor(cfg)
    grid = cfg.ode.teacher_grid()
    cond_mask = torch.zeros(5)
    cond_mask[0] = 1
    for index in (0, 4, 7):
        sample, clip = pairs[index], collate([clips[index]])
        initial = clip_noise(cfg.seed, index, clip["latents"].shape[1:])[None]
        initial[:, :, 0] = clip["latents"][:, :, 0]
        with torch.no_grad():
            out = sample_chunk_flow_euler(
                _prefix_fn(teacher.eval(), clip), initial, grid, [0, 3], cond_mask_T=cond_mask
            )
        assert torch.equal(sample["ode_latents"][-1], out[0]), index
        assert torch.equal(sample["ode_latents"][0, :, 1:], initial[0, :, 1:])
        assert torch.equal(sample["camera_conditions"], clip["camera_conditions"][0])
    shard = load_file(str(tmp_path / "debug_ode_pairs" / "ode_pairs" / "shard_00002.safetensors"))
    assert shard["index"].tolist() == [6, 7] and shard["latents"].shape == (2, 5, 4, 5, 4, 4)


def test_dmd_from_official_checkpoints_by_configuration(tmp_path) -> None:
    """Generator from the official chunk-causal file, real score and critic from the official bidirectional
    file: the frozen real score holds those weights, and the run's losses equal a run from our own files."""
    cfg = recipe("debug_self_forcing_dmd", tmp_path, "max_steps=2")
    _, bidirectional, files = _official_files(tmp_path, cfg)
    runs = {}
    for kind in ("official", "ours"):
        run = apply_overrides(
            cfg,
            [
                f"out_dir={tmp_path / kind}",
                f"init_from={files['causal_' + kind]}",
                f"dmd.real_from={files['bidirectional_' + kind]}",
            ],
        )
        trainer = Trainer(run)
        trainer.run()
        runs[kind] = read_metrics(run.out_dir)
        if kind == "ours":  # the critic exports (sana-wm train export --weights critic) as trained
            assert (
                main(
                    [
                        "train",
                        "export",
                        run.out_dir,
                        str(tmp_path / "critic.safetensors"),
                        "--weights",
                        "critic",
                    ]
                )
                == 0
            )
            critic = load_transformer(tmp_path / "critic.safetensors")
            assert critic.config.chunk_size is None
            live = trainer.dmd.critic.state_dict()
            assert all(torch.equal(v, live[k]) for k, v in critic.state_dict().items())
            assert not torch.equal(live["final_layer.linear.weight"], bidirectional.final_layer.linear.weight)
        real = trainer.dmd.real.state_dict()
        assert all(torch.equal(real[k], v) for k, v in bidirectional.state_dict().items())
        assert trainer.dmd.real.config.chunk_size is None and trainer.model.config.chunk_size == 2
    keys = ("loss", "grad_norm", "generator_loss", "generator_grad_norm")
    assert [[r.get(k) for k in keys] for r in runs["official"]] == [
        [r.get(k) for k in keys] for r in runs["ours"]
    ]
    assert [r["step"] for r in runs["ours"] if "generator_loss" in r] == [1]  # iteration 0 (interval 2)


@pytest.mark.parametrize(
    "name", ["chunk_causal_teacher", "ode_pairs", "ode_t43", "self_forcing_t43", "self_forcing_t121"]
)
def test_the_full_size_recipes_build(name: str) -> None:
    cfg = load_recipe(f"{REPO / 'recipes' / 'distill.py'}:{name}")
    assert cfg.model.chunk_size == 3 and cfg.model.hidden_size == 2240
    expected = {
        "chunk_causal_teacher": ("flow", 3),
        "ode_pairs": ("ode_pairs", None),
        "ode_t43": ("ode_regression", None),
        "self_forcing_t43": ("self_forcing_dmd", None),
        "self_forcing_t121": ("self_forcing_dmd", None),
    }[name]
    assert (cfg.mode, cfg.loss.chunk_size) == expected
    if name.startswith("self_forcing"):
        assert cfg.dmd.guidance_scale == 3.0 and cfg.dmd.generator_update_interval == 5
        assert (cfg.dmd.num_cached_blocks, cfg.dmd.sink) == (
            (2, True) if name.endswith("121") else (-1, False)
        )
