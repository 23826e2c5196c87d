"""``scripts/train_demo_model.py --tiny --device cpu`` end to end, and the demo pipeline on what it writes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from demo_training.recipe import dit_config, tiny
from safetensors import safe_open

from sana_wm.inference import CameraPath, GenerationRequest
from sana_wm.inference.demo_model import (
    demo_available,
    demo_first_frame,
    load_demo_pipeline,
    read_demo_settings,
)
from sana_wm.models import SanaWMConfig

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_demo_model.py"
EXPECTED_FILES = {
    "transformer.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
    "first_frame.png",
    "demo_model.json",
    "MODEL_CARD.md",
    "sample.mp4",
    "train_log.txt",
}


def _script():
    spec = importlib.util.spec_from_file_location("train_demo_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained(tiny_demo_dir: Path) -> Path:
    return tiny_demo_dir


def test_tiny_run_writes_the_eight_files(trained: Path) -> None:
    out = trained
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == EXPECTED_FILES
    assert demo_available(out)
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert "-->TBD<!--" not in card and "<!-- m:dit_steps -->3<!-- /m -->" in card


def test_metadata_records_settings_data_and_metrics(trained: Path) -> None:
    out = trained
    meta = json.loads((out / "demo_model.json").read_text(encoding="utf-8"))
    recipe = tiny()
    settings = read_demo_settings(out)
    assert (settings.height, settings.width, settings.num_frames) == (64, 96, 17)
    assert settings.intrinsics[2:] == (48.0, 32.0)
    assert meta["data"]["train_samples"] == 4 * meta["data"]["train_clips"] == 4 * recipe.max_gpu_clips
    assert meta["metrics"]["dit_steps"] == recipe.dit_max_steps
    assert meta["metrics"]["vae_steps"] == recipe.vae_max_steps
    with safe_open(str(out / "transformer.safetensors"), framework="pt") as handle:
        stored = SanaWMConfig.from_dict(json.loads(handle.metadata()["sana_wm_config"]))
        dtypes = {handle.get_tensor(k).dtype for k in handle.keys()}
    assert stored == dit_config(recipe) and dtypes == {torch.float16}
    assert meta["params"]["transformer"] == sum(p.numel() for p in _model(stored).parameters())


def _model(cfg: SanaWMConfig) -> torch.nn.Module:
    from sana_wm.models import SanaWMTransformer

    with torch.device("meta"):
        return SanaWMTransformer(cfg)


def test_demo_pipeline_on_the_artifacts_is_seeded(trained: Path) -> None:
    out = trained
    settings = read_demo_settings(out)
    threads = torch.get_num_threads()
    try:
        pipe = load_demo_pipeline("cpu", directory=out)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert pipe.backend == "reference" and pipe.dtype == torch.float32
    image = demo_first_frame(out)
    assert image.size == (96, 64)

    def generate(seed: int) -> np.ndarray:
        camera = CameraPath.from_action(
            settings.action, mapping=settings.action_mapping, intrinsics=settings.intrinsics_array()
        )
        request = GenerationRequest(
            image=image, prompt="", camera=camera, sampling=settings.sampling(seed=seed)
        )
        result = pipe(request, progress=False)
        assert result.intrinsics_source == "given" and result.num_frames == 17
        return result.frames.numpy()

    first, again, other = generate(1), generate(1), generate(2)
    assert first.shape == (17, 64, 96, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_a_continued_run_keeps_the_vae_and_trains_the_dit_further(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "continued"
    assert _script().main(["--out", str(out), "--tiny", "--device", "cpu", "--init_from", str(trained)]) == 0
    vae_file = "vae/diffusion_pytorch_model.safetensors"
    assert (out / vae_file).read_bytes() == (trained / vae_file).read_bytes()
    meta = json.loads((out / "demo_model.json").read_text(encoding="utf-8"))
    first = json.loads((trained / "demo_model.json").read_text(encoding="utf-8"))
    assert meta["metrics"]["dit_steps_total"] == 2 * tiny().dit_max_steps
    assert meta["metrics"]["vae_steps"] == first["metrics"]["vae_steps"]  # carried over, not retrained
    assert meta["continued_from"]["metrics"]["dit_steps_total"] == tiny().dit_max_steps
    with (
        safe_open(str(out / "transformer.safetensors"), framework="pt") as new,
        safe_open(str(trained / "transformer.safetensors"), framework="pt") as old,
    ):
        name = "blocks.0.attn.qkv.weight"
        assert not torch.equal(new.get_tensor(name), old.get_tensor(name))


def test_refuses_a_non_empty_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("x")
    assert _script().main(["--out", str(tmp_path), "--tiny", "--device", "cpu"]) == 2
    assert "is not empty" in capsys.readouterr().err
