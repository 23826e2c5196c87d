"""Weight resolution: the official release found in the Hugging Face cache, and what is reported missing."""

from __future__ import annotations

import shutil

import pytest
import torch
from helpers.tiny_parts import HEIGHT, INTRINSICS, PROMPT, WIDTH, make_pipeline

from sana_wm.errors import InputError
from sana_wm.inference import GenerationRequest
from sana_wm.inference.pipeline import load_pipeline
from sana_wm.inference.weights import OFFICIAL_REPO, TEXT_ENCODER_REPO, MissingWeightsError, resolve_weights

COMMIT = "0123456789abcdef0123456789abcdef01234567"


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


def test_the_release_layout_in_the_cache_loads_without_network(tiny, tiny_dirs, hub_cache) -> None:
    """Our tiny weights stored under the official repository names load with no path argument at all."""
    hub_cache(OFFICIAL_REPO, {"dit/sana_wm_1600m_720p.safetensors": tiny_dirs.model})
    hub_cache(OFFICIAL_REPO, {f"vae/{p.name}": p for p in tiny_dirs.vae.iterdir()})
    hub_cache(TEXT_ENCODER_REPO, {p.name: p for p in tiny_dirs.text_encoder.iterdir()})
    # The tiny checkpoint is not the release architecture: name the preset instead of the release config.yaml.
    pipe = load_pipeline(config="tiny", device="cpu", dtype="float32", local_files_only=True)
    assert pipe.weights.model.parts[-2:] == ("dit", "sana_wm_1600m_720p.safetensors")
    assert COMMIT in str(pipe.weights.vae) and pipe.weights.vae.name == "vae"
    kwargs = dict(action="w-8", intrinsics=INTRINSICS, num_frames=9, steps=2, height=HEIGHT, width=WIDTH)
    request = GenerationRequest.create(tiny.image, PROMPT, **kwargs)
    got = pipe(request, progress=False)
    want = make_pipeline(tiny)(request, progress=False)
    assert torch.equal(got.latents, want.latents)


def test_a_partial_cache_reports_only_what_is_missing(tiny_dirs, hub_cache) -> None:
    hub_cache(
        OFFICIAL_REPO, {"dit/sana_wm_1600m_720p.safetensors": tiny_dirs.model}
    )  # no vae/, no config.yaml
    with pytest.raises(MissingWeightsError) as err:
        resolve_weights(text_encoder_path=tiny_dirs.text_encoder, local_files_only=True)
    assert [(m.what, m.flag) for m in err.value.missing] == [
        ("config.yaml", "--config"),
        ("vae/", "--vae_path"),
    ]
    why = "(not in the Hugging Face cache, offline mode)"
    assert str(err.value).splitlines() == [
        f"missing config.yaml from {OFFICIAL_REPO} {why}: pass --config FILE",
        f"missing vae/ from {OFFICIAL_REPO} {why}: pass --vae_path DIR",
    ]


def test_hf_uris_and_local_paths(tiny_dirs, hub_cache, tmp_path) -> None:
    hub_cache("someone/finetune", {"weights/model.safetensors": tiny_dirs.model})
    paths = resolve_weights(
        "hf://someone/finetune/weights/model.safetensors",
        vae_path=tiny_dirs.root,  # a repository root holding vae/ works too
        text_encoder_path=tiny_dirs.text_encoder,
        local_files_only=True,
    )
    assert paths.model.read_bytes() == tiny_dirs.model.read_bytes()
    assert paths.vae == tiny_dirs.vae and paths.config is None
    with pytest.raises(InputError, match=r"^--model_path: Invalid HF URI"):
        resolve_weights("hf://nope", vae_path=tiny_dirs.vae, text_encoder_path=tiny_dirs.text_encoder)
    with pytest.raises(InputError, match=r"^--text_encoder_path: .* has no config.json$"):
        resolve_weights(tiny_dirs.model, vae_path=tiny_dirs.vae, text_encoder_path=tmp_path)


def test_a_dead_connection_is_tried_once_then_the_cache_only(monkeypatch, tmp_path) -> None:
    """No network and nothing cached: the first download fails, the rest are not even attempted online."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    online_tries = []

    def unreachable(*args, local_files_only: bool = False, **kwargs):
        if not local_files_only:
            online_tries.append(args[:2])
        raise LocalEntryNotFoundError("not cached")

    import sana_wm.inference.weights as weights

    monkeypatch.setattr(huggingface_hub, "is_offline_mode", lambda: False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    monkeypatch.setattr(weights, "hub_reachable", lambda: True)  # the endpoint answers, the download fails
    with pytest.raises(MissingWeightsError) as err:
        resolve_weights(local_files_only=False)
    assert online_tries == [(OFFICIAL_REPO, "dit/sana_wm_1600m_720p.safetensors")]
    reasons = [m.reason for m in err.value.missing]
    assert reasons[0] == "not in the Hugging Face cache and the Hub cannot be reached"
    assert reasons[1:] == ["not in the Hugging Face cache, offline mode"] * 3

    # No connection at all: the quick probe answers, and the Hub client (its retries took 30-40 s) is never
    # asked to download.
    online_tries.clear()
    monkeypatch.setattr(weights, "hub_reachable", lambda: False)
    with pytest.raises(MissingWeightsError) as err:
        resolve_weights(local_files_only=False)
    assert online_tries == []
    assert [m.reason for m in err.value.missing] == reasons
