"""Session fixtures: the tiny components in memory and saved in the formats ``load_pipeline`` reads."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers.tiny_parts import (
    save_tiny_refiner,
    source_image,
    tiny_gemma,
    tiny_oracle,
    tiny_tokenizer,
    tiny_vae,
)


@pytest.fixture(scope="session")
def tiny() -> SimpleNamespace:
    from sana_wm.models import SanaWMTransformer, config_from_diffusers

    oracle = tiny_oracle()
    ours = SanaWMTransformer(config_from_diffusers(dict(oracle.config))).eval()
    ours.load_state_dict(oracle.state_dict(), strict=True)
    return SimpleNamespace(
        tokenizer=tiny_tokenizer(),
        gemma=tiny_gemma(),
        vae=tiny_vae(),
        oracle=oracle,
        ours=ours,
        image=source_image(),
    )


@pytest.fixture(scope="session")
def tiny_dirs(tiny, tmp_path_factory) -> SimpleNamespace:
    """The tiny components on disk: our transformer file, a diffusers VAE folder, a transformers folder."""
    from sana_wm.models.checkpoint_io import save_transformer

    root = tmp_path_factory.mktemp("tiny_weights")
    save_transformer(tiny.ours, root / "transformer.safetensors")
    tiny.vae.save_pretrained(root / "vae")
    tiny.gemma.save_pretrained(root / "text_encoder")
    tiny.tokenizer.save_pretrained(root / "text_encoder")
    return SimpleNamespace(
        model=root / "transformer.safetensors",
        vae=root / "vae",
        text_encoder=root / "text_encoder",
        root=root,
    )


@pytest.fixture(scope="session")
def refiner_dir(tmp_path_factory) -> Path:
    """The tiny refiner on disk in the release layout (``refiner/{transformer,connectors,text_encoder}``)."""
    return save_tiny_refiner(tmp_path_factory.mktemp("tiny_refiner"))


@pytest.fixture(scope="module")
def causal_pipe(tiny):  # noqa: ANN001, ANN201
    """The tiny pipeline with its transformer chunk-causal (chunks of 3 latent frames), same weights."""
    import dataclasses

    from helpers.tiny_parts import make_pipeline

    from sana_wm.models import SanaWMTransformer

    pipe = make_pipeline(tiny)
    model = SanaWMTransformer(dataclasses.replace(tiny.ours.config, chunk_size=3)).eval()
    model.load_state_dict(tiny.ours.state_dict())
    pipe.transformer = model
    return pipe
