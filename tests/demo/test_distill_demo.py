"""``scripts/train_demo_model.py --tiny --device cpu --init_from DIR --distill``: the 4-step student of a tiny
demo model, end to end (ODE pairs, ODE regression, self-forcing DMD, the patch, the evaluation)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from demo_training.recipe import CHUNK_CAUSAL_TRAINABLE, dit_config, tiny
from safetensors import safe_open

from sana_wm.inference.demo_patch import file_sha256, load_chunk_causal_demo_transformer
from sana_wm.models import load_transformer
from sana_wm.train.parallel import trainable_names

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "train_demo_model.py"
STUDENT = "transformer_student.safetensors"


def _script():
    spec = importlib.util.spec_from_file_location("train_demo_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def distilled(tiny_demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("distill") / "out"
    args = ["--out", str(out), "--tiny", "--device", "cpu", "--init_from", str(tiny_demo_dir), "--distill"]
    assert _script().main(args) == 0
    return out


def test_writes_the_student_patch_and_its_record(distilled: Path, tiny_demo_dir: Path) -> None:
    assert {p.name for p in distilled.iterdir()} == {STUDENT, "demo_model.json", "train_log.txt"}
    meta = json.loads((distilled / "demo_model.json").read_text(encoding="utf-8"))
    record = meta.pop("student")
    assert meta == json.loads((tiny_demo_dir / "demo_model.json").read_text(encoding="utf-8"))
    causal = dataclasses.replace(dit_config(tiny()), chunk_size=3)
    keys = trainable_names(causal, CHUNK_CAUSAL_TRAINABLE)
    assert record["step_list"] == "1000,900,750,500,0"
    assert record["config"] == causal.to_dict()
    assert record["tensors"] == len(keys)
    assert record["base_sha256"] == file_sha256(tiny_demo_dir / "transformer.safetensors")
    with safe_open(str(distilled / STUDENT), "pt") as handle:
        assert sorted(handle.keys()) == sorted(keys)
        assert {handle.get_tensor(k).dtype for k in keys} == {torch.float16}
    metrics = record["metrics"]
    assert metrics["ode_steps"] == 2 and metrics["dmd_steps"] == 2
    # The critic starts as the real score (both the bidirectional base): the first DMD gradient is exactly 0.
    assert metrics["dmd_generator_loss_first"] == 0.0
    names = ("teacher", "ode_student", "student")
    for key in ("psnr_db", "dx_correlation"):
        assert all(math.isfinite(metrics[f"heldout_{n}_{key}"]) for n in names)
    assert math.isfinite(metrics["heldout_student_latent_psnr_vs_teacher_db"])


def test_the_student_loads_as_a_chunk_causal_demo_transformer(distilled: Path, tiny_demo_dir: Path) -> None:
    """Base + student patch: the patch's tensors where it has them, the base's bit for bit elsewhere."""
    student = load_chunk_causal_demo_transformer(tiny_demo_dir, "cpu", patch_path=distilled / STUDENT)
    assert student.config.chunk_size == 3
    base = load_transformer(tiny_demo_dir / "transformer.safetensors", dtype=torch.float32).state_dict()
    with safe_open(str(distilled / STUDENT), "pt") as handle:
        patched = set(handle.keys())
        for key, value in student.state_dict().items():
            expected = handle.get_tensor(key).float() if key in patched else base[key]
            assert torch.equal(value, expected), key


def test_distill_needs_init_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _script().main(["--out", str(tmp_path / "o"), "--tiny", "--device", "cpu", "--distill"]) == 2
    assert "--distill needs --init_from" in capsys.readouterr().err
