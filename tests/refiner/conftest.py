"""Tiny refiner parts shared by the refiner tests (built once per session)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from helpers import tiny_refiner


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every refiner test runs on one thread (``one_thread`` in tests/conftest.py)."""


@pytest.fixture(scope="session")
def parts() -> SimpleNamespace:
    return SimpleNamespace(
        transformer=tiny_refiner.transformer(),
        connectors=tiny_refiner.connectors(),
        gemma=tiny_refiner.gemma3(),
        tokenizer=tiny_refiner.tokenizer(),
    )


@pytest.fixture(scope="session")
def refiner(parts):
    """Our refiner on the CPU in float32, short (64-token) prompts to keep the tests fast."""
    from sana_wm.inference.refiner import Refiner
    from sana_wm.text_encoder import RefinerTextEncoder

    text_encoder = RefinerTextEncoder(parts.gemma, parts.tokenizer)
    return Refiner(
        parts.transformer, parts.connectors, text_encoder, text_max_length=tiny_refiner.TEXT_LENGTH
    )


@pytest.fixture(scope="session")
def prompt(refiner):
    """The encoded test prompt (Gemma-3 + connectors), reused where the text path is not under test."""
    return refiner.encode_prompt(tiny_refiner.PROMPT)
