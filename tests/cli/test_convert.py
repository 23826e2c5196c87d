"""``sana-wm convert``: a training checkpoint or an official chunk-causal file -> ours; and its refusals."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from helpers.checkpoints import (
    TINY_CHUNK_CAUSAL_YAML,
    TINY_STREAMING,
    official_layout,
    same_state,
    save_training_checkpoint,
    tiny_model,
    tiny_registry,  # noqa: F401  (fixture)
    training_checkpoint,
)
from safetensors.torch import save_file

from sana_wm.cli import main
from sana_wm.models import load_transformer, tiny

pytestmark = pytest.mark.usefixtures("one_thread")


class Opaque:
    """A custom class: a checkpoint holding one needs more than tensors to unpickle."""

    def __init__(self) -> None:
        self.value = 1


@pytest.fixture(scope="module")
def models():
    return tiny_model(1, TINY_STREAMING, torch.bfloat16), tiny_model(2, TINY_STREAMING, torch.bfloat16)


@pytest.fixture(scope="module")
def streaming_root(models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder in the streaming release's layout with the tiny generator's training checkpoint."""
    root = tmp_path_factory.mktemp("streaming")
    save_training_checkpoint(root / "sana_dit" / "model.pt", training_checkpoint(*models))
    return root


def _config_json(path: Path, **changes) -> Path:
    path.write_text(json.dumps({**TINY_STREAMING.to_dict(), **changes}))
    return path


def test_convert_a_training_checkpoint(tmp_path: Path, streaming_root: Path, models, caplog) -> None:
    out = tmp_path / "student.safetensors"
    config = _config_json(tmp_path / "tiny_streaming.json")
    caplog.set_level(logging.INFO, logger="sana_wm")
    assert (
        main(
            [
                "convert",
                str(streaming_root / "sana_dit" / "model.pt"),
                "--out",
                str(out),
                "--config",
                str(config),
            ]
        )
        == 0
    )
    loaded = load_transformer(out)  # our format: the config travels with the weights
    assert loaded.config == TINY_STREAMING and loaded.config.chunk_size == 3
    assert same_state(loaded, models[0])
    count = len(models[0].state_dict())
    nbytes = sum(v.numel() * v.element_size() for v in models[0].state_dict().values())
    assert f"wrote {out}: {count} tensors ({count} bfloat16), {nbytes / 1e9:.2f} GB of weights" in caplog.text
    assert "training checkpoint, generator at generator" in caplog.text
    assert f"chunk-causal, chunk_size 3 (first_plus_one); from {config}" in caplog.text


def test_a_preset_and_chunk_size_override(tmp_path: Path, streaming_root: Path, models, caplog) -> None:
    out = tmp_path / "student.safetensors"
    caplog.set_level(logging.INFO, logger="sana_wm")
    argv = ["convert", str(streaming_root / "sana_dit" / "model.pt"), "--out", str(out), "--config", "tiny"]
    assert main([*argv, "--chunk-size", "4"]) == 0
    loaded = load_transformer(out)
    assert loaded.config.chunk_size == 4 and loaded.config == type(tiny())(
        **{**tiny().to_dict(), "chunk_size": 4}
    )
    assert same_state(loaded, models[0])
    assert "from preset tiny, chunk_size 4 from --chunk_size" in caplog.text


@pytest.mark.usefixtures("tiny_registry")
def test_convert_the_chunk_causal_release_layout(tmp_path: Path, models) -> None:
    """The HF layout of SANA-WM_chunk_causal: dit/<file>.safetensors, config.yaml at the root (fp32 here)."""
    teacher = tiny_model(3, TINY_STREAMING)
    (tmp_path / "dit").mkdir()
    dit = tmp_path / "dit" / "sana_wm_chunk_causal_1600m_720p.safetensors"
    save_file(official_layout(teacher, ""), str(dit))
    (tmp_path / "config.yaml").write_text(TINY_CHUNK_CAUSAL_YAML)
    direct = load_transformer(dit)
    assert direct.config == TINY_STREAMING and same_state(direct, teacher)
    out = tmp_path / "teacher.safetensors"
    assert main(["convert", str(dit), "--out", str(out)]) == 0
    converted = load_transformer(out)
    assert converted.config.chunk_size == 3 and same_state(converted, teacher)


def _refused(argv: list[str], capsys, out: Path) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sana-wm convert: error: ") and "Traceback" not in err
    assert not out.exists() and not list(out.parent.glob(f".{out.stem}*"))
    return err


def test_a_checkpoint_needing_custom_classes_is_refused(tmp_path: Path, models, capsys) -> None:
    path = tmp_path / "model.pt"
    torch.save({"generator": official_layout(models[0]), "args": Opaque()}, path)
    out = tmp_path / "out" / "w.safetensors"
    err = _refused(["convert", str(path), "--out", str(out), "--config", "tiny"], capsys, out)
    assert (
        f"checkpoint: {path} is not a tensors-only checkpoint; refusing to unpickle arbitrary objects" in err
    )
    assert "Opaque" in err


def test_missing_and_extra_keys_are_the_strict_report(tmp_path: Path, models, capsys) -> None:
    generator = official_layout(models[0])
    del generator["model.blocks.3.mlp.t_conv.weight"]
    generator["model.blocks.0.attn.surplus"] = torch.zeros(2)
    path = save_training_checkpoint(tmp_path / "model.pt", {"generator": generator})
    out = tmp_path / "w.safetensors"
    err = _refused(["convert", str(path), "--out", str(out), "--config", "tiny"], capsys, out)
    assert (
        f"checkpoint {path}: 1 missing (blocks.3.mlp.t_conv.weight); 1 unexpected (blocks.0.attn.surplus)"
        in err
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--chunk_size", "0"], "--chunk_size: expected a positive integer, got 0"),
        (["--config", "nope"], "--config: nope is neither a file nor a preset"),
        (["--config", "BAD_JSON"], "--config: cannot read"),
        (["--config", "BAD_KEY"], "config: unknown key(s) depht"),
    ],
)
def test_bad_arguments(tmp_path: Path, streaming_root: Path, capsys, extra: list[str], message: str) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    _config_json(tmp_path / "key.json", depht=3)
    extra = [
        {"BAD_JSON": str(tmp_path / "bad.json"), "BAD_KEY": str(tmp_path / "key.json")}.get(a, a)
        for a in extra
    ]
    out = tmp_path / "w.safetensors"
    err = _refused(
        ["convert", str(streaming_root / "sana_dit" / "model.pt"), "--out", str(out), *extra], capsys, out
    )
    assert message in err


def test_bad_input_and_output_paths(tmp_path: Path, streaming_root: Path, capsys) -> None:
    model = str(streaming_root / "sana_dit" / "model.pt")
    out = tmp_path / "w.safetensors"
    err = _refused(["convert", str(tmp_path / "missing.pt"), "--out", str(out)], capsys, out)
    assert "does not exist" in err
    wrong = tmp_path / "w.bin"
    err = _refused(["convert", model, "--out", str(wrong)], capsys, wrong)
    assert "--out: expected a .safetensors path" in err
    pickle_file = tmp_path / "w.pkl"
    pickle_file.write_bytes(b"\x80\x04K\x01.")
    err = _refused(["convert", str(pickle_file), "--out", str(out), "--config", "tiny"], capsys, out)
    assert "is a pickle file" in err
