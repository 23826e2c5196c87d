"""Weight look-up of the streaming release and the chunk-causal teacher: local folders, the HF cache."""

from __future__ import annotations

import json
import shutil
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

from sana_wm.errors import InputError
from sana_wm.inference.streaming_weights import (
    CHUNK_CAUSAL_REPO,
    STREAMING_REPO,
    load_streaming_transformer,
    resolve_streaming_weights,
)
from sana_wm.inference.weights import TEXT_ENCODER_REPO, MissingWeightsError

pytestmark = pytest.mark.usefixtures("one_thread")
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def student():
    return tiny_model(1, TINY_STREAMING, torch.bfloat16)


def _folder(path: Path, *files: str) -> Path:
    """A stand-in component folder: a config.json, a small safetensors file and the named extra files."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text("{}")
    save_file({"w": torch.zeros(1)}, str(path / "model.safetensors"))
    for name in files:
        (path / name).write_text("{}")
    return path


def _streaming_root(root: Path, student) -> Path:
    """The SANA-WM_streaming layout with the tiny student and stand-in VAE / refiner / Gemma-3 folders."""
    save_training_checkpoint(root / "sana_dit" / "model.pt", training_checkpoint(student, tiny_model(2)))
    _folder(root / "ltx2_causal_vae")
    _folder(root / "refiner_diffusers" / "transformer")
    _folder(root / "refiner_diffusers" / "connectors")
    _folder(root / "gemma3_12b", "tokenizer.json")
    return root


def _config_json(path: Path) -> Path:
    path.write_text(json.dumps(TINY_STREAMING.to_dict()))
    return path


def test_a_local_streaming_folder_resolves_and_loads_offline(tmp_path: Path, student) -> None:
    root = _streaming_root(tmp_path / "SANA-WM_streaming", student)
    text_encoder = _folder(tmp_path / "gemma2", "tokenizer.json")
    config = _config_json(tmp_path / "tiny_streaming.json")
    paths = resolve_streaming_weights(
        root, config=config, text_encoder_path=text_encoder, local_files_only=True
    )
    assert paths.model == root / "sana_dit" / "model.pt" and paths.config == config
    assert paths.vae == root / "ltx2_causal_vae" and paths.text_encoder == text_encoder
    assert paths.refiner is not None
    assert paths.refiner.transformer == root / "refiner_diffusers" / "transformer"
    assert paths.refiner.connectors == root / "refiner_diffusers" / "connectors"
    assert paths.refiner.text_encoder == paths.refiner.tokenizer == root / "gemma3_12b"
    model = load_streaming_transformer(paths, None, CPU, torch.bfloat16)
    assert model.config == TINY_STREAMING and same_state(model, student) and not model.training
    with pytest.raises(
        InputError, match=r"^--model_path: .*model.pt is a bidirectional model; streaming needs"
    ):
        load_streaming_transformer(paths, "tiny", CPU, torch.bfloat16)
    # A VAE given as a repository root holding ltx2_causal_vae/ works too.
    paths = resolve_streaming_weights(
        root / "sana_dit" / "model.pt", vae_path=root, text_encoder_path=text_encoder, refiner=False
    )
    assert paths.vae == root / "ltx2_causal_vae" and paths.refiner is None and paths.config is None


@pytest.mark.usefixtures("tiny_registry")
def test_a_local_chunk_causal_folder(tmp_path: Path, student) -> None:
    teacher = tiny_model(3, TINY_STREAMING)
    root = tmp_path / "SANA-WM_chunk_causal"
    (root / "dit").mkdir(parents=True)
    save_file(official_layout(teacher, ""), str(root / "dit" / "sana_wm_chunk_causal_1600m_720p.safetensors"))
    (root / "config.yaml").write_text(TINY_CHUNK_CAUSAL_YAML)
    vae = _folder(tmp_path / "vae")
    text_encoder = _folder(tmp_path / "gemma2", "tokenizer.json")
    paths = resolve_streaming_weights(root, vae_path=vae, text_encoder_path=text_encoder, refiner=False)
    assert paths.model.name == "sana_wm_chunk_causal_1600m_720p.safetensors"
    assert paths.config == root / "config.yaml" and paths.refiner is None
    model = load_streaming_transformer(paths, None, CPU, torch.float32)
    assert model.config.chunk_size == 3 and same_state(model, teacher)
    (root / "dit" / "second.safetensors").write_bytes(b"")
    with pytest.raises(
        InputError, match=r"holds neither sana_dit/model.pt nor one dit/\*.safetensors \(found 2\)"
    ):
        resolve_streaming_weights(root, vae_path=vae, text_encoder_path=text_encoder, refiner=False)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache; ``add(repo, {path_in_repo: source_file})`` puts files into it."""
    import huggingface_hub.constants

    root = tmp_path / "hub"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root))

    def add(repo: str, files: dict) -> None:
        folder = root / f"models--{repo.replace('/', '--')}"
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / "main").write_text(COMMIT)
        for path_in_repo, source in files.items():
            target = folder / "snapshots" / COMMIT / path_in_repo
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)

    return add


def _files(folder: Path, prefix: str = "") -> dict[str, Path]:
    return {f"{prefix}{p.relative_to(folder)}": p for p in folder.rglob("*") if p.is_file()}


def test_the_release_layouts_in_the_cache_resolve_offline(tmp_path: Path, student, hub_cache) -> None:
    hub_cache(STREAMING_REPO, _files(_streaming_root(tmp_path / "streaming", student)))
    hub_cache(TEXT_ENCODER_REPO, _files(_folder(tmp_path / "gemma2", "tokenizer.json")))
    config = _config_json(tmp_path / "tiny_streaming.json")
    for model_path in (None, f"hf://{STREAMING_REPO}"):
        paths = resolve_streaming_weights(model_path, config=config, local_files_only=True)
        snapshot = paths.model.parents[1]
        assert COMMIT in str(snapshot) and paths.model.relative_to(snapshot).as_posix() == "sana_dit/model.pt"
        assert paths.vae == snapshot / "ltx2_causal_vae"
        assert paths.refiner is not None and paths.refiner.text_encoder == snapshot / "gemma3_12b"
        assert paths.refiner.transformer == snapshot / "refiner_diffusers" / "transformer"
    assert same_state(load_streaming_transformer(paths, None, CPU, torch.bfloat16), student)

    teacher = tmp_path / "teacher.safetensors"
    save_file(official_layout(tiny_model(3, TINY_STREAMING), ""), str(teacher))
    (tmp_path / "config.yaml").write_text(TINY_CHUNK_CAUSAL_YAML)
    hub_cache(
        CHUNK_CAUSAL_REPO,
        {"dit/sana_wm_chunk_causal_1600m_720p.safetensors": teacher, "config.yaml": tmp_path / "config.yaml"},
    )
    paths = resolve_streaming_weights(f"hf://{CHUNK_CAUSAL_REPO}", refiner=False, local_files_only=True)
    assert (
        paths.model.name == "sana_wm_chunk_causal_1600m_720p.safetensors"
        and paths.config.name == "config.yaml"
    )
    assert "SANA-WM_streaming" in str(paths.vae) and paths.vae.name == "ltx2_causal_vae"


def test_an_empty_cache_reports_every_missing_piece(hub_cache) -> None:
    with pytest.raises(MissingWeightsError) as err:
        resolve_streaming_weights(local_files_only=True)
    assert [(m.what, m.source, m.flag) for m in err.value.missing] == [
        ("sana_dit/model.pt", STREAMING_REPO, "--model_path"),
        ("ltx2_causal_vae/", STREAMING_REPO, "--vae_path"),
        ("the weights", TEXT_ENCODER_REPO, "--text_encoder_path"),
        ("refiner_diffusers/transformer/", STREAMING_REPO, "--refiner_checkpoint"),
        ("refiner_diffusers/connectors/", STREAMING_REPO, "--refiner_checkpoint"),
        ("gemma3_12b/", STREAMING_REPO, "--refiner_gemma_root"),
    ]
    assert all("offline mode" in line for line in str(err.value).splitlines())
