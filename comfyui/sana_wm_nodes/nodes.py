"""The nodes, in ComfyUI's node interface: ``INPUT_TYPES`` (a classmethod), ``RETURN_TYPES``,
``RETURN_NAMES``, ``FUNCTION`` and ``CATEGORY``; each ``FUNCTION`` returns a tuple.

Every node is one call into :mod:`sana_wm.comfyui` (no generation logic lives here). Types passed between
them: ``SANA_WM_MODEL`` (a loaded pipeline), ``SANA_WM_CAMERA`` (a camera path), ``SANA_WM_VIDEO`` (stage-1 or
refined latents with their poses; frames decode in the Decode node), and ComfyUI's ``IMAGE``
(``(B, H, W, C)`` float32 in [0, 1]). Numbers left at 0 (or -1) take the loaded model's defaults.
"""

from __future__ import annotations

from sana_wm import comfyui as wm
from sana_wm.inference.demo_model import DEFAULT_ACTION
from sana_wm.inference.request import BACKENDS, OFFLOAD_MODES, REFINER_MODES, SAMPLER_NAMES, RefinerSettings

CATEGORY = "SANA-WM"
MAX_SEED = 2**63 - 1
DEFAULT = "0: the model's default"


def _text(default: str = "", multiline: bool = False) -> tuple:
    return ("STRING", {"default": default, "multiline": multiline})


class LoadModel:
    """The demo model (bundled, CPU-friendly) or the released SANA-WM (Hugging Face cache or local paths)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802 (ComfyUI's name)
        return {
            "required": {
                "model": (list(wm.MODELS), {"default": "demo"}),
                "device": (["auto", "cpu", "cuda"], {"default": "auto"}),
                "dtype": (["auto", "float32", "bfloat16", "float16"], {"default": "auto"}),
                "offload": (list(OFFLOAD_MODES), {"default": "none"}),
                "backend": (list(BACKENDS), {"default": "auto"}),
                "refiner": (
                    "BOOLEAN",
                    {"default": False, "tooltip": "release only: find the stage-2 refiner"},
                ),
            },
            "optional": {
                "demo_dir": _text(),
                "model_path": _text(),
                "config": _text(),
                "vae_path": _text(),
                "text_encoder_path": _text(),
                "refiner_checkpoint": _text(),
                "refiner_gemma_root": _text(),
            },
        }

    RETURN_TYPES = ("SANA_WM_MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(
        self, model: str, device: str, dtype: str, offload: str, backend: str, refiner: bool, **paths: str
    ):
        return (
            wm.load_model(
                model, device=device, dtype=dtype, offload=offload, backend=backend, refiner=refiner, **paths
            ),
        )


class CameraFromAction:
    """A camera path from an action string (``w-16,jw-32``: keys and frame counts)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        return {
            "required": {
                "action": _text(DEFAULT_ACTION),
                "mapping": (["v1", "v2"], {"default": "v1"}),
                "translation_speed": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 100.0, "step": 0.01}),
                "rotation_speed_deg": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 90.0, "step": 0.1}),
                "pitch_limit_deg": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 89.9, "step": 0.1}),
            }
        }

    RETURN_TYPES = ("SANA_WM_CAMERA",)
    RETURN_NAMES = ("camera",)
    FUNCTION = "make"
    CATEGORY = CATEGORY

    def make(
        self,
        action: str,
        mapping: str,
        translation_speed: float,
        rotation_speed_deg: float,
        pitch_limit_deg: float,
    ):
        return (
            wm.camera_from_action(
                action,
                mapping=mapping,
                translation_speed=translation_speed,
                rotation_speed_deg=rotation_speed_deg,
                pitch_limit_deg=pitch_limit_deg,
            ),
        )


class CameraFromFile:
    """A camera path from a ``.npy`` file of ``(F, 4, 4)`` camera-to-world poses (OpenCV axes, metres)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        return {"required": {"path": _text(), "mapping": (["v1", "v2"], {"default": "v1"})}}

    RETURN_TYPES = ("SANA_WM_CAMERA",)
    RETURN_NAMES = ("camera",)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, path: str, mapping: str):
        return (wm.camera_from_file(path, mapping=mapping),)


class Stage1:
    """First image + prompt + camera path -> stage-1 latents (decode them with the Decode node)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        return {
            "required": {
                "model": ("SANA_WM_MODEL",),
                "image": ("IMAGE",),
                "camera": ("SANA_WM_CAMERA",),
                "prompt": _text(multiline=True),
                "seed": (
                    "INT",
                    {"default": -1, "min": -1, "max": MAX_SEED, "tooltip": "-1: the model's default"},
                ),
                "steps": ("INT", {"default": 0, "min": 0, "max": 10_000, "tooltip": DEFAULT}),
                "cfg_scale": (
                    "FLOAT",
                    {
                        "default": -1.0,
                        "min": -1.0,
                        "max": 100.0,
                        "step": 0.1,
                        "tooltip": "-1: the model's default",
                    },
                ),
                "flow_shift": (
                    "FLOAT",
                    {"default": 0.0, "min": 0.0, "max": 100.0, "step": 0.1, "tooltip": DEFAULT},
                ),
                "num_frames": ("INT", {"default": 0, "min": 0, "max": 100_000, "tooltip": DEFAULT}),
                "height": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 32, "tooltip": DEFAULT}),
                "width": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 32, "tooltip": DEFAULT}),
                "sampler": (["default", *SAMPLER_NAMES], {"default": "default"}),
            },
            "optional": {
                "negative_prompt": _text(multiline=True),
                "intrinsics": ("STRING", {"default": "", "tooltip": "fx, fy, cx, cy in pixels of the image"}),
            },
        }

    RETURN_TYPES = ("SANA_WM_VIDEO",)
    RETURN_NAMES = ("video",)
    FUNCTION = "generate"
    CATEGORY = CATEGORY

    def generate(self, model, image, camera, prompt: str, **settings):
        return (wm.stage1(model, image, camera, prompt, **settings),)


class Refine:
    """The stage-2 refiner on stage-1 latents (a release loaded with refiner on): F - 1 sharper frames."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        d = RefinerSettings()
        return {
            "required": {
                "model": ("SANA_WM_MODEL",),
                "video": ("SANA_WM_VIDEO",),
                "prompt": _text(multiline=True),
                "mode": (list(REFINER_MODES), {"default": d.mode}),
                "sink_size": ("INT", {"default": d.sink_size, "min": 1, "max": 1000}),
                "block_size": ("INT", {"default": d.block_size, "min": 1, "max": 1000}),
                "kv_max_frames": ("INT", {"default": d.kv_max_frames, "min": 2, "max": 10_000}),
                "seed": ("INT", {"default": d.seed, "min": 0, "max": MAX_SEED}),
                "fp8": ("BOOLEAN", {"default": d.fp8}),
            }
        }

    RETURN_TYPES = ("SANA_WM_VIDEO",)
    RETURN_NAMES = ("video",)
    FUNCTION = "refine"
    CATEGORY = CATEGORY

    def refine(self, model, video, prompt: str, **settings):
        return (wm.refine(model, video, prompt, RefinerSettings(**settings)),)


class Decode:
    """Latents -> ComfyUI IMAGE frames (F, H, W, 3), the frames sana-wm generate writes."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        return {"required": {"video": ("SANA_WM_VIDEO",)}}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    FUNCTION = "decode"
    CATEGORY = CATEGORY

    def decode(self, video):
        return (wm.decode(video),)


class TrajectoryPreview:
    """The camera path seen from above, with height, pitch and yaw: an IMAGE (1, 600, 1200, 3)."""

    @classmethod
    def INPUT_TYPES(cls) -> dict:  # noqa: N802
        return {"required": {"camera": ("SANA_WM_CAMERA",)}, "optional": {"title": _text()}}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("preview",)
    FUNCTION = "preview"
    CATEGORY = CATEGORY

    def preview(self, camera, title: str = ""):
        return (wm.trajectory_preview(camera, title),)


NODE_CLASS_MAPPINGS = {
    "SanaWMLoadModel": LoadModel,
    "SanaWMCameraFromAction": CameraFromAction,
    "SanaWMCameraFromFile": CameraFromFile,
    "SanaWMStage1": Stage1,
    "SanaWMRefine": Refine,
    "SanaWMDecode": Decode,
    "SanaWMTrajectoryPreview": TrajectoryPreview,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "SanaWMLoadModel": "SANA-WM Load Model",
    "SanaWMCameraFromAction": "SANA-WM Camera from Action",
    "SanaWMCameraFromFile": "SANA-WM Camera from .npy",
    "SanaWMStage1": "SANA-WM Stage 1 (image + prompt -> latents)",
    "SanaWMRefine": "SANA-WM Refine",
    "SanaWMDecode": "SANA-WM Decode",
    "SanaWMTrajectoryPreview": "SANA-WM Trajectory Preview",
}
