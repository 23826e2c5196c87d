"""Shared fixtures of the benchmark tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Every benchmark test runs on one thread (``one_thread`` in tests/conftest.py)."""
