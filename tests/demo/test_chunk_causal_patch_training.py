"""``scripts/train_demo_model.py --tiny --device cpu --init_from DIR --chunk_causal``: the chunk-causal patch
of a tiny demo model, end to end, and the ``python -m scripts.demo_training.run`` entry point."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from demo_training.recipe import causal_dit_config, tiny
from safetensors import safe_open

from sana_wm.inference.demo_patch import PATCH_FILE, file_sha256, load_chunk_causal_demo_transformer
from sana_wm.models import load_transformer
from sana_wm.train.parallel import trainable_names

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "train_demo_model.py"


def _script():
    spec = importlib.util.spec_from_file_location("train_demo_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def patched(tiny_demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("chunk_causal") / "out"
    args = [
        "--out",
        str(out),
        "--tiny",
        "--device",
        "cpu",
        "--init_from",
        str(tiny_demo_dir),
        "--chunk_causal",
    ]
    assert _script().main(args) == 0
    return out


def test_writes_only_the_patch_and_its_record(patched: Path, tiny_demo_dir: Path) -> None:
    files = {p.name for p in patched.iterdir()}
    expected = {PATCH_FILE, "demo_model.json", "train_log.txt"}
    if importlib.util.find_spec("av") is not None:
        expected.add("sample_chunk_causal.mp4")
    assert files == expected
    meta = json.loads((patched / "demo_model.json").read_text(encoding="utf-8"))
    base_meta = json.loads((tiny_demo_dir / "demo_model.json").read_text(encoding="utf-8"))
    record = meta.pop("chunk_causal")
    assert meta == base_meta  # the bidirectional entries are unchanged
    recipe = tiny()
    keys = trainable_names(causal_dit_config(recipe), recipe.causal_trainable)
    assert record["tensors"] == len(keys) and record["config"]["chunk_size"] == 1
    assert record["trainable"] == list(recipe.causal_trainable)
    assert record["loss"]["chunk_size"] == 1 and record["loss"]["chunk_mode"] == "mixture"
    assert record["base_sha256"] == file_sha256(tiny_demo_dir / "transformer.safetensors")
    assert record["bytes"] == (patched / PATCH_FILE).stat().st_size
    metrics = record["metrics"]
    assert metrics["dit_steps"] == recipe.dit_max_steps
    for name in ("bidirectional", "base_chunk_causal", "chunk_causal"):
        assert metrics[f"heldout_loss_{name}"] > 0
    assert "demo_psnr_db" in metrics and record["timings_s"]["total"] > 0
    with safe_open(str(patched / PATCH_FILE), framework="pt") as handle:
        assert sorted(handle.keys()) == sorted(keys)
        assert {handle.get_tensor(k).dtype for k in handle.keys()} == {torch.float16}


def test_the_patched_model_differs_from_the_base_in_the_patch_only(
    patched: Path, tiny_demo_dir: Path
) -> None:
    base = load_transformer(tiny_demo_dir / "transformer.safetensors", dtype=torch.float32).state_dict()
    model = load_chunk_causal_demo_transformer(tiny_demo_dir, "cpu", patch_path=patched / PATCH_FILE)
    assert model.config == causal_dit_config(tiny())
    keys = set(trainable_names(model.config, tiny().causal_trainable))
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, base[k])}
    assert changed <= keys and "t_block.1.weight" in changed and "blocks.0.attn.proj.weight" in changed


def test_chunk_causal_needs_init_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _script().main(["--out", str(tmp_path / "o"), "--tiny", "--device", "cpu", "--chunk_causal"]) == 2
    assert "--chunk_causal needs --init_from" in capsys.readouterr().err


def test_runs_as_a_module_from_the_repository_root(tmp_path: Path) -> None:
    """``python -m scripts.demo_training.run`` reaches the script's argument parser (and its checks)."""
    cmd = [sys.executable, "-m", "scripts.demo_training.run", "--out", str(tmp_path), "--chunk_causal"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--chunk_causal needs --init_from" in result.stderr
