"""Which model runs, and the defaults that come with it: the one rule for demo vs release weights.

The bundled demo model (:mod:`sana_wm.inference.demo_model`) runs unless ``official`` is asked for or a
release weight flag (``model_path``, ``config``, ``vae_path``, ``text_encoder_path``) is given. Each model
brings its defaults (:class:`Defaults`): the release's are :data:`RELEASE_DEFAULTS`, the demo model's are
recorded with its weights (``demo_model.json``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from sana_wm.errors import InputError
from sana_wm.inference.request import DEFAULT_FLOW_SHIFT


@dataclass(frozen=True, kw_only=True)
class Defaults:
    """Generation settings a model runs with unless told otherwise."""

    num_frames: int
    steps: int
    cfg_scale: float
    flow_shift: float
    sampler: str
    fps: float
    height: int
    width: int
    seed: int = 42
    action: str | None = None  # a default camera path (the demo model's); the release needs one given
    action_mapping: str = "v1"


RELEASE_DEFAULTS = Defaults(
    num_frames=161,
    steps=60,
    cfg_scale=5.0,
    flow_shift=DEFAULT_FLOW_SHIFT,
    sampler="ltx_euler",
    fps=16.0,
    height=704,
    width=1280,
)
RELEASE_WEIGHT_FLAGS = ("model_path", "config", "vae_path", "text_encoder_path")


@dataclass(frozen=True, kw_only=True)
class ModelSource:
    """The demo model in ``demo_dir``, or (``demo_dir`` None) the release with optional local weights
    (None = the official files from the Hugging Face cache)."""

    demo_dir: Path | None = None
    model_path: str | None = None
    config: str | None = None
    vae_path: str | None = None
    text_encoder_path: str | None = None
    refiner_checkpoint: str | None = None
    refiner_gemma_root: str | None = None

    @property
    def is_demo(self) -> bool:
        return self.demo_dir is not None

    @property
    def kind(self) -> str:
        return "demo" if self.is_demo else "release"

    def defaults(self) -> Defaults:
        if self.demo_dir is None:
            return RELEASE_DEFAULTS
        from sana_wm.inference.demo_model import read_demo_settings

        demo = read_demo_settings(self.demo_dir)
        return Defaults(**{f.name: getattr(demo, f.name) for f in dataclasses.fields(Defaults)})


def choose_model(
    *,
    official: bool = False,
    demo_dir: str | Path | None = None,
    model_path: str | None = None,
    config: str | None = None,
    vae_path: str | None = None,
    text_encoder_path: str | None = None,
    refiner_checkpoint: str | None = None,
    refiner_gemma_root: str | None = None,
) -> ModelSource:
    """The rule: the demo model (``demo_dir``, default the bundled one) unless ``official`` or a release
    weight flag asks for the release. Raises :class:`InputError` for a mix of both or an incomplete folder."""
    release_flags = (model_path, config, vae_path, text_encoder_path)
    release = official or any(value is not None for value in release_flags)
    if not release:
        from sana_wm.inference.demo_model import DEMO_DIR, demo_available

        folder = Path(demo_dir) if demo_dir is not None else DEMO_DIR
        if not demo_available(folder):
            where = "--demo_dir" if demo_dir is not None else "the bundled demo model"
            raise InputError(
                f"{where}: {folder} holds no complete demo model (pass --official for the released weights)"
            )
        return ModelSource(demo_dir=folder)
    if demo_dir is not None:
        raise InputError("--demo_dir: cannot be combined with --official or the release's weight flags")
    return ModelSource(
        model_path=model_path,
        config=config,
        vae_path=vae_path,
        text_encoder_path=text_encoder_path,
        refiner_checkpoint=refiner_checkpoint,
        refiner_gemma_root=refiner_gemma_root,
    )
