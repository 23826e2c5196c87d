"""The model a server streams from: loaded once, shared by the sessions one at a time (the device is one).

:func:`load_engine` loads the chunk-causal stage-1 pipeline as ``sana-wm stream`` does
(:func:`~sana_wm.inference.stream_job.load_stream_pipeline`: the bundled demo model by default, the
streaming release with ``--model_path``); :func:`engine_from_pipeline` wraps any chunk-causal pipeline (the
benchmark's random full-size weights). :meth:`Engine.open_stream` starts one generation whose camera is
asked for a chunk at a time (``StreamSession.pose_source``), just before that chunk is sampled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from sana_wm.inference.pipeline import Pipeline
from sana_wm.inference.streaming import StreamSession, StreamSettings
from sana_wm.samplers.chunked import STUDENT_STEPS
from sana_wm.serve.protocol import LiveSettings

if TYPE_CHECKING:
    from sana_wm.inference.request import RuntimeSettings
    from sana_wm.inference.source import ModelSource

log = logging.getLogger("sana_wm")

CHUNK_FRAMES = 24  # pixel frames per chunk after the first (3 latent frames x 8)


@dataclass(frozen=True, kw_only=True)
class EngineDefaults:
    """What a session gets unless its settings say otherwise (the model's own generation settings)."""

    height: int
    width: int
    steps: int
    flow_shift: float
    step_list: str | None  # None: ``steps`` shifted steps per chunk (a model that is not distilled)
    fps: float = 16.0
    cfg_scale: float = 1.0


@dataclass
class Engine:
    """A loaded chunk-causal pipeline and what sessions need around it.

    Attributes:
        pipe: the stage-1 pipeline (chunk-causal transformer, VAE, text encoder).
        defaults: per-session defaults.
        kind: ``"demo"``, ``"release"`` or ``"random"`` (benchmark weights).
        first_frame, first_frame_intrinsics: the image a session starts from without an upload, with its
            ``[fx, fy, cx, cy]`` (None: estimated like an upload's).
        prompt_free: the model ignores the prompt (the demo model).
        decode_lookahead: latent frames a non-causal VAE holds back (0 to 3; the causal VAE needs none).
        record: keep each session as an mp4 + sidecar for Download (False: frames are only sent; for
            benchmarks on a machine without PyAV).
    """

    pipe: Pipeline
    defaults: EngineDefaults
    kind: str
    first_frame: Image.Image
    first_frame_intrinsics: np.ndarray | None = None
    prompt_free: bool = False
    decode_lookahead: int = 1
    record: bool = True

    @property
    def device(self) -> str:
        return str(self.pipe.device)

    def intrinsics(self, image: Image.Image | None) -> tuple[np.ndarray, str | None]:
        """``[fx, fy, cx, cy]`` in pixels of ``image`` (None: the bundled first frame) and a note for the
        user, if any."""
        if image is None and self.first_frame_intrinsics is not None:
            return self.first_frame_intrinsics, None
        picture = self.first_frame if image is None else image
        if self.kind == "demo":
            from sana_wm.inference.demo_model import SYNTHETIC_NOTE, centred_intrinsics

            return centred_intrinsics(picture.height, picture.width), SYNTHETIC_NOTE
        from sana_wm.camera import estimate_intrinsics

        estimated, source = estimate_intrinsics(picture, allow_pi3x=False)
        note = None if source == "exif" else "no EXIF focal length: a default field of view is assumed"
        return estimated, note

    def stream_settings(self, settings: LiveSettings) -> StreamSettings:
        d = self.defaults
        return StreamSettings(
            height=settings.height or d.height,
            width=settings.width or d.width,
            step_list=d.step_list,
            steps=settings.steps or d.steps,
            flow_shift=d.flow_shift,
            cfg_scale=d.cfg_scale,
            seed=settings.seed,
        )

    def open_stream(
        self,
        image: Image.Image | None,
        prompt: str,
        settings: LiveSettings,
        num_chunks: int,
        pose_source: Callable[[int], np.ndarray],
    ) -> tuple[StreamSession, StreamSettings, np.ndarray]:
        """A stream of ``num_chunks`` chunks from ``image`` (None: the bundled first frame); returns it, its
        settings and the intrinsics in pixels of the generated frames."""
        from sana_wm.vae_stream import StreamingDecoder

        picture = self.first_frame if image is None else image
        intrinsics_4, _ = self.intrinsics(image)
        stream_settings = self.stream_settings(settings)
        causal = bool(self.pipe.vae.vae.decoder.is_causal)
        decoder = StreamingDecoder(self.pipe.vae, lookahead=None if causal else self.decode_lookahead)
        stream = StreamSession.create(
            self.pipe,
            picture,
            "" if self.prompt_free else prompt,
            np.eye(4, dtype=np.float32)[None],
            intrinsics_4,
            CHUNK_FRAMES * num_chunks + 1,
            stream_settings,
            decoder=decoder,
        )
        stream.pose_source = pose_source
        return stream, stream_settings, stream.intrinsics_4


def load_engine(source: ModelSource, runtime: RuntimeSettings, *, decode_lookahead: int = 1) -> Engine:
    """Load the model of ``source`` (:class:`~sana_wm.inference.source.ModelSource`) with ``runtime``
    (:class:`~sana_wm.inference.request.RuntimeSettings`)."""
    from sana_wm.inference.stream_job import load_stream_pipeline

    pipe, _ = load_stream_pipeline(source, runtime)
    model_defaults = source.defaults()
    if source.is_demo:
        from sana_wm.inference.demo_model import demo_first_frame, read_demo_settings

        demo = read_demo_settings(source.demo_dir)
        defaults = EngineDefaults(
            height=demo.height, width=demo.width, steps=demo.steps, flow_shift=demo.flow_shift, step_list=None
        )
        return Engine(
            pipe,
            defaults,
            "demo",
            demo_first_frame(source.demo_dir),
            demo.intrinsics_array(),
            prompt_free=True,
            decode_lookahead=decode_lookahead,
        )
    from sana_wm.inference.demo_model import demo_first_frame

    defaults = EngineDefaults(
        height=model_defaults.height,
        width=model_defaults.width,
        steps=4,
        flow_shift=model_defaults.flow_shift,
        step_list=STUDENT_STEPS,
        fps=model_defaults.fps,
    )
    log.info("serve: no default picture for the release; the demo's first frame is offered")
    return Engine(pipe, defaults, "release", demo_first_frame(), None, decode_lookahead=decode_lookahead)


def engine_from_pipeline(pipe: Pipeline, defaults: EngineDefaults, first_frame: Image.Image) -> Engine:
    """An engine around a ready chunk-causal pipeline (the benchmark's random weights): no prompt needed,
    intrinsics estimated like an upload's."""
    return Engine(pipe, defaults, "random", first_frame, None)
