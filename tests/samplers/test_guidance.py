import torch

from sana_wm.samplers import cfg, cfg_model_fn


def test_cfg_hand_values() -> None:
    u = torch.tensor([1.0, -2.0, 0.5])
    c = torch.tensor([3.0, 1.0, 0.5])
    assert torch.equal(cfg(u, c, 5.0), torch.tensor([11.0, 13.0, 0.5]))
    assert torch.equal(cfg(u, c, 1.0), c)
    assert torch.equal(cfg(u, c, 0.0), u)


def test_cfg_model_fn_runs_negative_then_positive_in_one_call() -> None:
    calls = []

    def model_pair(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        calls.append((x.clone(), t.clone()))
        # Row r of the batch sees "prompt" r: the negative half adds 1, the positive half adds 10.
        offset = torch.tensor([1.0, 1.0, 10.0, 10.0]).view(4, 1, 1, 1, 1)
        return 2.0 * x + offset + t.view(4, 1, -1, 1, 1) / 1000

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 2, 2, generator=g)
    t = torch.tensor([0.0, 500.0, 500.0, 500.0]).view(1, 1, 4).repeat(2, 1, 1)
    v = cfg_model_fn(model_pair, 3.0)(x, t)
    assert len(calls) == 1
    assert torch.equal(calls[0][0], torch.cat([x, x])) and torch.equal(calls[0][1], torch.cat([t, t]))
    base = 2.0 * x + t.view(2, 1, 4, 1, 1) / 1000
    assert torch.allclose(v, base + 1.0 + 3.0 * 9.0, atol=1e-5)
