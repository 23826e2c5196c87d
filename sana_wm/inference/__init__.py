"""Generation: typed requests in, frames out.

- :mod:`~sana_wm.inference.request`: :class:`GenerationRequest` and its parts, validated once when made;
- :mod:`~sana_wm.inference.source`: which model runs (demo or release) and its defaults;
- :mod:`~sana_wm.inference.run`: :func:`load` and :func:`generate`, the entry point of every caller;
- :mod:`~sana_wm.inference.pipeline` (stage 1), :mod:`~sana_wm.inference.two_stage` and
  :mod:`~sana_wm.inference.refiner` (stage 2), :mod:`~sana_wm.inference.weights` (where weights come from),
  :mod:`~sana_wm.inference.offload`, :mod:`~sana_wm.inference.demo_model` (the bundled model);
- :mod:`~sana_wm.inference.job`, :mod:`~sana_wm.inference.outputs`: a whole command's run, files in and out.

Importing this package is cheap: the components load their libraries (diffusers, transformers) on use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sana_wm.inference.request import (
    CameraPath,
    GenerationRequest,
    RefinerSettings,
    RuntimeSettings,
    SamplingSettings,
)
from sana_wm.inference.source import Defaults, ModelSource, choose_model

if TYPE_CHECKING:
    from sana_wm.inference.run import generate, load

__all__ = [
    "CameraPath",
    "Defaults",
    "GenerationRequest",
    "ModelSource",
    "RefinerSettings",
    "RuntimeSettings",
    "SamplingSettings",
    "choose_model",
    "generate",
    "load",
]


def __getattr__(name: str) -> Any:
    if name in ("generate", "load"):
        from sana_wm.inference import run

        return getattr(run, name)
    raise AttributeError(name)
