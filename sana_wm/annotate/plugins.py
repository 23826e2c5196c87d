"""Optional learned models as plug-ins: none is required, none is downloaded.

A plug-in is named ``module:attribute`` (``--depth_model``, ``--caption_model``); the attribute is a
factory called with no arguments (load local weights there) returning an object of the protocol below.
Nothing here imports a model library: the plug-in module does.

- :class:`MetricDepth`: ``depth(rgb_HW3 uint8) -> (H, W) float32`` metric depth in metres (camera z, the
  depth-map convention; non-finite or <= 0 where unknown), e.g. a MoGe-2, UniDepth or Depth-Anything-metric
  wrapper. Gives the metric scale source ``depth:<name>``.
- :class:`Captioner`: ``caption(frames_FHW3 uint8) -> str``, a scene-static description (the training
  captions never describe the camera's motion).
"""

from __future__ import annotations

import importlib
from typing import Protocol, runtime_checkable

import numpy as np

from sana_wm.errors import InputError


@runtime_checkable
class MetricDepth(Protocol):
    name: str

    def depth(self, rgb_HW3: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Captioner(Protocol):
    name: str

    def caption(self, frames_FHW3: np.ndarray) -> str: ...


def load_plugin(spec: str, protocol: type, flag: str) -> object:
    """Import ``module:attribute``, call it, check the result against ``protocol``; errors name ``flag``."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise InputError(f"{flag}: expected MODULE:FACTORY, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise InputError(f"{flag}: cannot import {module_name} ({err})") from err
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise InputError(f"{flag}: {module_name} has no callable {attribute}")
    plugin = factory()
    if not isinstance(plugin, protocol):
        raise InputError(f"{flag}: {spec} did not return a {protocol.__name__} (needs name and a method)")
    return plugin
