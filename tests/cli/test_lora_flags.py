"""``--lora FILE [--lora_scale S]`` on generate/demo/stream/eval-world: the adapter is merged into the loaded
stage-1 weights (W + S·alpha/r·BA); scale 0 is the base model exactly; a bad file: one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sana_wm.cli import main
from sana_wm.inference.request import RuntimeSettings
from sana_wm.inference.run import load
from sana_wm.inference.source import choose_model
from sana_wm.models.lora import save_adapter

pytestmark = pytest.mark.usefixtures("one_thread")


def _adapter(transformer: torch.nn.Module, path: Path) -> dict[str, torch.Tensor]:
    """A rank-2 adapter on every block's ``attn.qkv`` of ``transformer`` (random A and B)."""
    gen = torch.Generator().manual_seed(0)
    tensors = {}
    for index, block in enumerate(transformer.blocks):
        out_dim, in_dim = block.attn.qkv.weight.shape
        tensors[f"blocks.{index}.attn.qkv.lora_A.weight"] = torch.randn(2, in_dim, generator=gen)
        tensors[f"blocks.{index}.attn.qkv.lora_B.weight"] = 0.1 * torch.randn(out_dim, 2, generator=gen)
    save_adapter(tensors, path, rank=2, alpha=4.0, targets=["blocks.*.attn.qkv"], model_config={})
    return tensors


def test_load_merges_the_adapter_at_its_scale(tmp_path: Path, tiny_demo_dir: Path) -> None:
    source = choose_model(demo_dir=str(tiny_demo_dir))
    base = load(source, RuntimeSettings(device="cpu")).transformer
    tensors = _adapter(base, tmp_path / "a.safetensors")
    merged = load(source, RuntimeSettings(device="cpu", lora=str(tmp_path / "a.safetensors"), lora_scale=0.5))
    zero = load(source, RuntimeSettings(device="cpu", lora=str(tmp_path / "a.safetensors"), lora_scale=0.0))
    for name, value in base.state_dict().items():
        assert torch.equal(zero.transformer.state_dict()[name], value), name
        got = merged.transformer.state_dict()[name]
        module = name.removesuffix(".weight")
        if f"{module}.lora_A.weight" in tensors:
            a, b = tensors[f"{module}.lora_A.weight"], tensors[f"{module}.lora_B.weight"]
            torch.testing.assert_close(got, value + 0.5 * (4.0 / 2) * (b @ a), rtol=0, atol=1e-6)
        else:
            assert torch.equal(got, value), name


@pytest.mark.parametrize("command", ["demo", "generate", "stream"])
def test_a_bad_adapter_file_is_one_line_and_exit_2(
    command: str, tmp_path: Path, tiny_demo_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    out = ["--out", str(tmp_path / "o")] if command == "demo" else ["--output_dir", str(tmp_path / "o")]
    argv = ["--quiet", command, "--demo_dir", str(tiny_demo_dir), *out]
    argv += ([] if command == "demo" else ["--action", "w-24"]) + ["--lora", str(bad)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--lora" in err and "not a safetensors file" in err and len(err.splitlines()) == 1, err
    assert main([*argv[:-1], str(tmp_path / "missing.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_eval_world_takes_lora(tmp_path: Path, tiny_demo_dir: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["--quiet", "eval-world", "--demo_dir", str(tiny_demo_dir), "--out", str(tmp_path / "e")]
    assert main([*argv, "--lora", str(tmp_path / "missing.safetensors"), "--lora_scale", "0.5"]) == 2
    assert "--lora:" in capsys.readouterr().err and not (tmp_path / "e" / "eval.json").exists()
