"""Backend names, the validator callers use at their boundary, and the dispatch table every op uses.

An op's package (``sana_wm/ops/<op>/``) holds one module per implementation and builds a :class:`Dispatch`
naming them; its public function is ``_IMPLEMENTATIONS[backend].<function>(...)``. Callers validate the
backend once, where it enters (the pipeline, the CLI, ``SanaWMTransformer.forward``), with
:func:`check_backend`; the ops do not check it again on every call.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Literal

import torch

from sana_wm.errors import InputError

Backend = Literal["reference", "torch", "triton"]
BACKENDS: tuple[str, ...] = ("reference", "torch", "triton")


@functools.cache
def triton_importable() -> bool:
    """Whether ``import triton`` works here (checked once per process)."""
    try:
        importlib.import_module("triton")
    except ImportError:
        return False
    return True


def check_backend(backend: str) -> None:
    """Raise :class:`InputError` unless ``backend`` names an implemented backend usable here."""
    if backend not in BACKENDS:
        raise InputError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "triton" and not triton_importable():
        raise InputError("backend: 'triton' needs the triton package, which is not importable here")


def fastest_backend(device: torch.device) -> Backend:
    """``"triton"`` on CUDA when triton is importable (the fused kernels, with the accuracy of ``"torch"``),
    else ``"torch"``. Measured speeds: ``BENCHMARKS.md``."""
    return "triton" if device.type == "cuda" and triton_importable() else "torch"


class Dispatch:
    """One op's implementations: backend name → module of the op's package, imported on first use.

    ``Dispatch(__name__, reference="reference", torch="torch_fast", triton="triton_kernel")`` in the op's
    ``__init__.py``; ``table[backend]`` is the module. Modules are imported lazily (the triton ones import
    ``triton``) and cached; the first use of a backend runs :func:`check_backend`, so an unknown name or a
    missing triton package is a one-line :class:`InputError` there, and later calls only look the module up.
    """

    def __init__(self, package: str, **modules: str) -> None:
        if set(modules) != set(BACKENDS):
            raise ValueError(f"{package}: give a module for each of {BACKENDS}, got {sorted(modules)}")
        self._package = package
        self._modules = modules
        self._loaded: dict[str, ModuleType] = {}

    def __getitem__(self, backend: str) -> ModuleType:
        module = self._loaded.get(backend)
        if module is None:
            module = self._load(backend)
        return module

    def _load(self, backend: str) -> ModuleType:
        check_backend(backend)
        module = importlib.import_module(f"{self._package}.{self._modules[backend]}")
        self._loaded[backend] = module
        return module
