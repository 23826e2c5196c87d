"""Run config: strict overrides with type checks, strict dict/YAML reading, recipes, the CLI surface."""

from __future__ import annotations

import json

import pytest
from helpers.training import DEBUG_RECIPE, REPO

from sana_wm.cli import main
from sana_wm.errors import InputError
from sana_wm.train.config import (
    RunConfig,
    apply_overrides,
    config_diff,
    config_from_dict,
    load_config_file,
    load_recipe,
)
from sana_wm.train.losses import LossConfig


def test_overrides_parse_each_type():
    cfg = apply_overrides(
        RunConfig(),
        [
            "max_steps=7",
            "optim.lr=3e-4",
            "optim.betas=0.8,0.95",
            "parallel.compile=true",
            "loss.chunk_size=3",
            "loss.chunk_mode=clean_prefix",
            "loss.chunk_mixture.same_t=0.5",
            "init_from=some/file.safetensors",
            "model.depth=4",
            "model.plucker_blocks=4",
            "ema.decay=0.99",
            "data.max_frames=none",
        ],
    )
    assert cfg.max_steps == 7 and cfg.optim.lr == 3e-4 and cfg.optim.betas == (0.8, 0.95)
    assert cfg.parallel.compile is True and cfg.loss.chunk_size == 3 and cfg.loss.chunk_mode == "clean_prefix"
    assert cfg.loss.chunk_mixture.same_t == 0.5 and cfg.init_from == "some/file.safetensors"
    assert cfg.model.depth == 4 and cfg.ema.decay == 0.99 and cfg.data.max_frames is None
    assert apply_overrides(cfg, ["loss.chunk_size=None", "optim.lr=1"]).loss.chunk_size is None
    assert isinstance(apply_overrides(cfg, ["optim.lr=1"]).optim.lr, float)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1", "optim.lrr: unknown config key 'lrr'"),
        ("nope=1", "nope: unknown config key 'nope'"),
        ("loss.chunk_mixture.bogus=1", "loss.chunk_mixture.bogus: unknown config key 'bogus'"),
        ("max_steps=1.5", "max_steps: expected int, got '1.5'"),
        ("max_steps=abc", "max_steps: expected int"),
        ("optim.lr=fast", "optim.lr: expected float"),
        ("parallel.compile=maybe", "parallel.compile: expected bool"),
        ("loss.chunk_mode=diagonal", "loss.chunk_mode: expected 'mixture'"),
        ("optim.betas=0.9", "optim.betas: expected 2 comma-separated values"),
        ("optim=1", "optim: is a section"),
        ("max_steps.x=1", "max_steps.x: max_steps is not a section"),
        ("max_steps", "expected KEY=VALUE"),
        ("max_steps=0", "max_steps: must be >= 1"),
        ("loss.image_condition_prob=2", "loss.image_condition_prob: must be in [0, 1]"),
        ("model.head_dim=12", "config.head_dim"),
    ],
)
def test_override_errors(override, message):
    with pytest.raises(InputError) as err:
        apply_overrides(RunConfig(), [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_dict_round_trip_and_strict_reading(tmp_path):
    cfg = apply_overrides(load_recipe(str(DEBUG_RECIPE)), ["optim.betas=0.5,0.6", "loss.chunk_size=2"])
    data = cfg.to_dict()
    assert RunConfig.from_dict(json.loads(json.dumps(data))) == cfg
    data["loss"]["typo_field"] = 1
    with pytest.raises(InputError, match=r"^loss.typo_field: unknown config key"):
        RunConfig.from_dict(data)
    with pytest.raises(InputError, match=r"^model.dept: unknown config key"):
        RunConfig.from_dict({"model": {"dept": 2}})
    with pytest.raises(InputError, match=r"^max_steps: expected int, got '10'"):
        RunConfig.from_dict({"max_steps": "10"})
    with pytest.raises(InputError, match=r"^loss.fixed_noise: expected bool, got 1"):
        config_from_dict(RunConfig, {"loss": {"fixed_noise": 1}})
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(
        "max_steps: 3\nloss:\n  chunk_size: 3\n  chunk_mixture: {same_t: 1.0}\noptim:\n  betas: [0.9, 0.95]\n"
    )
    loaded = load_config_file(yaml_file)
    assert loaded.max_steps == 3 and loaded.loss.chunk_size == 3 and loaded.optim.betas == (0.9, 0.95)
    assert loaded.loss.chunk_mixture.same_t == 1.0 and loaded.loss.chunk_mixture.incremental == 0.4
    yaml_file.write_text("loss:\n  flow_shfit: 3\n")
    with pytest.raises(InputError, match="loss.flow_shfit: unknown config key"):
        load_config_file(yaml_file)


def test_config_diff():
    a = RunConfig().to_dict()
    b = apply_overrides(RunConfig(), ["max_steps=5", "loss.chunk_mixture.same_t=0.3"]).to_dict()
    assert config_diff(a, b) == ["loss.chunk_mixture.same_t", "max_steps"]


def test_recipes_load(monkeypatch):
    cfg = load_recipe(str(DEBUG_RECIPE))
    assert cfg.model.depth == 2 and cfg.device == "cpu" and cfg.loss.chunk_size == 1
    monkeypatch.chdir(REPO)
    assert load_recipe("debug") == cfg
    demo = load_recipe("recipes/demo.py:demo")
    assert (
        demo.data.kind == "zip"
        and demo.model.in_channels == 128
        and demo.loss == LossConfig(null_caption="empty_prompt")
    )
    with pytest.raises(InputError, match="has no function nothing"):
        load_recipe("recipes/debug.py:nothing")
    with pytest.raises(InputError, match="neither a .py file nor a recipe"):
        load_recipe("missing_recipe")


def test_cli_print_config_and_errors(capsys):
    assert main(["train", "run", "--recipe", str(DEBUG_RECIPE), "--print_config", "optim.lr=0.5"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["optim"]["lr"] == 0.5 and printed["model"]["depth"] == 2
    assert main(["train", "run", "--recipe", str(DEBUG_RECIPE), "optim.lrr=0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "sana-wm train: error: optim.lrr: unknown config key 'lrr' (known in optim: lr, betas, eps, "
        "weight_decay, grad_clip, warmup_steps, schedule, min_lr_ratio)"
    ]
    assert main(["train", "export", "/nonexistent/run", "out.safetensors"]) == 2
    assert "neither a checkpoint nor a run folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("c.json", b"{not json", "is not valid JSON"),
        ("c.yaml", b"a: [1, 2\n", "is not valid YAML"),
        ("c.yaml", b"\xff\xfe\x00bad", "is not valid YAML"),
        ("c.yaml", b"- 1\n- 2\n", "holds a list, not a mapping of settings"),
    ],
)
def test_a_malformed_config_file_is_one_line(tmp_path, name, content, message) -> None:
    from sana_wm.train.config import load_config_file

    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message):
        load_config_file(tmp_path / name)
