"""Argument groups shared by several subcommands (official underscore names, hyphen aliases)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sana_wm.camera import MAPPINGS
from sana_wm.inference.request import RuntimeSettings
from sana_wm.inference.source import ModelSource, choose_model

DEFAULT_ACTION = "w-80,jw-40,w-40,lw-60,w-100"


def flag(name: str) -> list[str]:
    """The official underscore spelling first, then its hyphen alias when the two differ."""
    alias = name.replace("_", "-")
    return [name, alias] if alias != name else [name]


def add_runtime_args(parser: argparse.ArgumentParser, *, offload: tuple[str, ...], offload_help: str) -> None:
    """The ``runtime`` group of a generating command: ``--device``, ``--dtype``, ``--backend``, ``--offload``
    (``offload``: the modes this command takes), ``--quantize`` and ``--quiet``."""
    from sana_wm.inference.request import BACKENDS, QUANTIZE_MODES
    from sana_wm.utils.device import DTYPES

    runtime = parser.add_argument_group("runtime")
    runtime.add_argument("--device", help="default: cuda if available, else cpu")
    runtime.add_argument("--dtype", choices=sorted(DTYPES), help="default: bfloat16 on cuda, float32 on cpu")
    runtime.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="the transformer's ops: auto (default) = triton on CUDA when installed, else torch",
    )
    runtime.add_argument("--offload", choices=offload, default="none", help=offload_help)
    runtime.add_argument(
        "--quantize",
        choices=QUANTIZE_MODES,
        default="none",
        help="fp8: store the stage-1 transformer's large projections in float8 (compute in --dtype)",
    )
    add_lora_args(runtime)
    runtime.add_argument(
        "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars, warnings only"
    )


def add_lora_args(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--lora FILE`` and ``--lora_scale S``: an adapter merged into the stage-1 weights at load."""
    parser.add_argument(
        "--lora",
        metavar="FILE.safetensors",
        help="LoRA adapter (sana-wm train export --weights lora) merged into the stage-1 weights at load",
    )
    parser.add_argument(
        *flag("--lora_scale"), dest="lora_scale", type=float, default=1.0, help="adapter strength (default 1)"
    )


def add_camera_path_args(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """``--action`` / ``--camera`` (exactly one) and the DSL's speed settings."""
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--action", help=f"WASD/IJKL action string, e.g. '{DEFAULT_ACTION}'")
    source.add_argument("--camera", metavar="FILE.npy", help="(F,4,4) camera-to-world poses, OpenCV axes")
    parser.add_argument(
        *flag("--action_mapping"),
        dest="action_mapping",
        choices=sorted(MAPPINGS),
        default="v1",
        help="action key mapping: v1 (default; a/d strafe, j/l yaw) or v2 (a/d yaw, j/l strafe)",
    )
    parser.add_argument(
        *flag("--translation_speed"), dest="translation_speed", type=float, help="metres per frame"
    )
    parser.add_argument(
        *flag("--rotation_speed_deg"), dest="rotation_speed_deg", type=float, help="degrees per frame"
    )
    parser.add_argument(*flag("--pitch_limit_deg"), dest="pitch_limit_deg", type=float, help="degrees")


# Flags that map one to one onto sana_wm.inference.job.GenerateJob fields of the same name.
JOB_FLAGS = (
    "image",
    "action",
    "camera",
    "action_mapping",
    "translation_speed",
    "rotation_speed_deg",
    "pitch_limit_deg",
    "intrinsics",
    "num_frames",
    "steps",
    "cfg_scale",
    "flow_shift",
    "sampler",
    "seed",
    "fps",
    "height",
    "width",
)


def job_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The :data:`JOB_FLAGS` this parser has, by name."""
    return {name: getattr(args, name) for name in JOB_FLAGS if hasattr(args, name)}


def runtime_settings(args: argparse.Namespace) -> RuntimeSettings:
    """``--device``, ``--dtype``, ``--backend``, ``--offload`` (those the parser has)."""
    return RuntimeSettings(
        device=getattr(args, "device", None),
        dtype=getattr(args, "dtype", None),
        backend=getattr(args, "backend", "auto"),
        offload=getattr(args, "offload", "none"),
        quantize=getattr(args, "quantize", "none"),
        lora=getattr(args, "lora", None),
        lora_scale=getattr(args, "lora_scale", 1.0),
    )


def silence_library_progress() -> None:
    """--quiet: turn off the download / weight-loading bars of the Hugging Face libraries too."""
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
    for name in ("transformers", "diffusers"):
        module = sys.modules.get(f"{name}.utils.logging")
        if module is not None:
            module.disable_progress_bar()


_SOURCE_FLAGS = (
    "official",
    "demo_dir",
    "model_path",
    "config",
    "vae_path",
    "text_encoder_path",
    "refiner_checkpoint",
    "refiner_gemma_root",
)


def model_source(args: argparse.Namespace) -> ModelSource:
    """The model the weight flags this parser has ask for (:func:`sana_wm.inference.choose_model`)."""
    return choose_model(**{name: getattr(args, name) for name in _SOURCE_FLAGS if hasattr(args, name)})
