"""The ComfyUI nodes (``comfyui/sana_wm_nodes``), headless, against ComfyUI's documented node interface.

ComfyUI itself is not on PyPI, so the package is loaded the way ComfyUI loads a custom-node folder (its
``__init__.py`` run as a package by file location), its mappings are checked against the node interface,
and each node's ``FUNCTION`` runs on the demo model: the frames equal ``sana_wm``'s own for the same request.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sana_wm.errors import InputError

NODES = Path(__file__).resolve().parents[2] / "comfyui" / "sana_wm_nodes"
STEPS, SEED, ACTION = 2, 3, "w-8,jw-8"
SPEEDS = dict(mapping="v1", translation_speed=0.0, rotation_speed_deg=0.0, pitch_limit_deg=0.0)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def package():
    """The node folder imported as ComfyUI's loader does: by file location, as a package."""
    spec = importlib.util.spec_from_file_location(
        "sana_wm_nodes", NODES / "__init__.py", submodule_search_locations=[str(NODES)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["sana_wm_nodes"] = module
    spec.loader.exec_module(module)
    yield module
    for name in [n for n in sys.modules if n == "sana_wm_nodes" or n.startswith("sana_wm_nodes.")]:
        del sys.modules[name]


def _run(package, name: str, **inputs):
    """A node's ``FUNCTION`` called as ComfyUI calls it: a new instance, every input by keyword."""
    cls = package.NODE_CLASS_MAPPINGS[name]
    return getattr(cls(), cls.FUNCTION)(**inputs)


def test_the_package_follows_the_node_interface(package) -> None:
    classes, names = package.NODE_CLASS_MAPPINGS, package.NODE_DISPLAY_NAME_MAPPINGS
    assert set(classes) == set(names) and len(classes) == 7
    for key, cls in classes.items():
        assert isinstance(inspect.getattr_static(cls, "INPUT_TYPES"), classmethod), key
        inputs = cls.INPUT_TYPES()
        assert set(inputs) <= {"required", "optional", "hidden"} and "required" in inputs, key
        for section in inputs.values():
            for name, spec in section.items():
                assert isinstance(spec, tuple) and 1 <= len(spec) <= 2, (key, name)
                kind = spec[0]
                if isinstance(kind, list):  # a combo: the default is one of the choices
                    assert all(isinstance(c, str) for c in kind) and spec[1]["default"] in kind, (key, name)
                else:
                    assert isinstance(kind, str) and kind.isupper(), (key, name)
        assert isinstance(cls.RETURN_TYPES, tuple) and all(isinstance(t, str) for t in cls.RETURN_TYPES)
        assert len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES)
        assert cls.CATEGORY == "SANA-WM"
        function = getattr(cls(), cls.FUNCTION)
        every = {n: None for section in inputs.values() for n in section}
        inspect.signature(function).bind(**every)  # every declared input is accepted by keyword
        required = {n: None for n in inputs["required"]}
        inspect.signature(function).bind(**required)  # optional inputs may be left out


def test_a_demo_generation_equals_sana_wm(package) -> None:
    from sana_wm.inference import GenerationRequest, ModelSource, load
    from sana_wm.inference.demo_model import DEMO_DIR, demo_first_frame, read_demo_settings

    first = demo_first_frame()
    image_BHWC = torch.from_numpy(np.array(first)).float()[None] / 255.0
    runtime = dict(model="demo", device="cpu", dtype="auto", offload="none", backend="auto", refiner=False)
    (model,) = _run(package, "SanaWMLoadModel", **runtime)
    (camera,) = _run(package, "SanaWMCameraFromAction", action=ACTION, **SPEEDS)
    (video,) = _run(
        package,
        "SanaWMStage1",
        model=model,
        image=image_BHWC,
        camera=camera,
        prompt="",
        seed=SEED,
        steps=STEPS,
        cfg_scale=-1.0,
        flow_shift=0.0,
        num_frames=0,
        height=0,
        width=0,
        sampler="default",
    )
    (frames,) = _run(package, "SanaWMDecode", video=video)

    settings = read_demo_settings()
    pipe = load(ModelSource(demo_dir=DEMO_DIR))
    request = GenerationRequest.create(
        first,
        "",
        action=ACTION,
        intrinsics=settings.intrinsics_array(),
        **dataclasses.asdict(settings.sampling(steps=STEPS, seed=SEED)),
    )
    direct = pipe(request, progress=False)
    expected = torch.from_numpy(direct.frames.numpy()).float() / 255.0
    assert frames.dtype == torch.float32 and frames.shape == (17, settings.height, settings.width, 3)
    assert torch.equal(video.latents, direct.latents)
    assert torch.equal(frames, expected)
    np.testing.assert_array_equal(video.c2w, direct.c2w)
    print(f"nodes vs sana_wm: 17 frames, identical; mean pixel {frames.mean().item():.4f}")
    with pytest.raises(InputError, match="the demo model has no refiner"):
        refiner = dict(mode="single_shot", sink_size=1, block_size=3, kv_max_frames=11, seed=42, fp8=False)
        _run(package, "SanaWMRefine", model=model, video=video, prompt="", **refiner)


def test_trajectory_preview_and_npy_camera(package, tmp_path: Path) -> None:
    from sana_wm.camera import action_to_c2w
    from sana_wm.viz.trajectory_plot import plot_trajectory

    c2w = action_to_c2w(ACTION)
    np.save(tmp_path / "path.npy", c2w)
    (camera,) = _run(package, "SanaWMCameraFromFile", path=str(tmp_path / "path.npy"), mapping="v1")
    np.testing.assert_array_equal(camera.c2w_F44, c2w)
    (preview,) = _run(package, "SanaWMTrajectoryPreview", camera=camera, title="a walk")
    plot_trajectory(c2w, tmp_path / "plot.png", title="a walk")  # what sana-wm trajectory writes
    expected = np.asarray(Image.open(tmp_path / "plot.png").convert("RGB"), dtype=np.float32) / 255.0
    assert preview.shape == (1, 600, 1200, 3) and preview.dtype == torch.float32
    assert torch.equal(preview[0], torch.from_numpy(expected))


def test_bad_inputs_are_one_line_errors(package) -> None:
    with pytest.raises(InputError, match="belong to the release"):
        load = dict(device="cpu", dtype="auto", offload="none", backend="auto", refiner=False)
        _run(package, "SanaWMLoadModel", model="demo", model_path="x.safetensors", **load)
    with pytest.raises(InputError, match="--action"):
        _run(package, "SanaWMCameraFromAction", action="w5", **SPEEDS)
    from sana_wm.comfyui import parse_intrinsics

    with pytest.raises(InputError, match="four numbers"):
        parse_intrinsics("100, 100, 50")


def test_release_with_refiner_equals_two_stage(package, tmp_path: Path) -> None:
    """Load (release, local tiny weights, refiner on) -> Stage 1 -> Refine -> Decode through the nodes equals
    ``load_pipeline`` + ``generate_two_stage`` on the same folders."""
    from helpers.checkpoints import tiny_model
    from helpers.tiny_parts import (
        HEIGHT,
        INTRINSICS,
        PROMPT,
        WIDTH,
        save_tiny_refiner,
        source_image,
        tiny_gemma,
        tiny_tokenizer,
        tiny_vae,
    )

    from sana_wm.inference import GenerationRequest, RefinerSettings
    from sana_wm.inference.pipeline import load_pipeline
    from sana_wm.inference.two_stage import generate_two_stage
    from sana_wm.models.checkpoint_io import save_transformer

    save_transformer(tiny_model(6), tmp_path / "transformer.safetensors")
    tiny_vae().save_pretrained(tmp_path / "vae")
    tiny_gemma().save_pretrained(tmp_path / "gemma")
    tiny_tokenizer().save_pretrained(tmp_path / "gemma")
    refiner_dir = save_tiny_refiner(tmp_path)
    paths = dict(
        model_path=str(tmp_path / "transformer.safetensors"),
        vae_path=str(tmp_path / "vae"),
        text_encoder_path=str(tmp_path / "gemma"),
        refiner_checkpoint=str(refiner_dir),
        refiner_gemma_root=str(refiner_dir / "text_encoder"),
    )
    runtime = dict(device="cpu", dtype="float32", offload="none", backend="torch")
    (model,) = _run(package, "SanaWMLoadModel", model="release", refiner=True, **runtime, **paths)
    (camera,) = _run(package, "SanaWMCameraFromAction", action=ACTION, **SPEEDS)
    image = source_image()
    intrinsics = ", ".join(str(v) for v in INTRINSICS)
    sampling = dict(
        seed=SEED, steps=STEPS, cfg_scale=-1.0, flow_shift=0.0, num_frames=17, height=HEIGHT, width=WIDTH
    )
    (video,) = _run(
        package,
        "SanaWMStage1",
        model=model,
        image=torch.from_numpy(np.array(image)).float()[None] / 255.0,
        camera=camera,
        prompt=PROMPT,
        sampler="default",
        intrinsics=intrinsics,
        **sampling,
    )
    refiner = dict(mode="single_shot", sink_size=1, block_size=3, kv_max_frames=11, seed=42, fp8=False)
    (refined,) = _run(package, "SanaWMRefine", model=model, video=video, prompt=PROMPT, **refiner)
    (frames,) = _run(package, "SanaWMDecode", video=refined)

    pipe = load_pipeline(
        paths["model_path"],
        vae_path=paths["vae_path"],
        text_encoder_path=paths["text_encoder_path"],
        device="cpu",
        dtype="float32",
        backend="torch",
        refiner=True,
        refiner_checkpoint=paths["refiner_checkpoint"],
        refiner_gemma_root=paths["refiner_gemma_root"],
    )
    request = GenerationRequest.create(
        image,
        PROMPT,
        action=ACTION,
        intrinsics=np.asarray(INTRINSICS, dtype=np.float32),
        refiner=RefinerSettings(),
        seed=SEED,
        steps=STEPS,
        num_frames=17,
        height=HEIGHT,
        width=WIDTH,
    )
    direct = generate_two_stage(pipe, request, progress=False)
    assert torch.equal(video.latents, direct.stage1.latents)
    assert torch.equal(refined.latents, direct.latents)
    assert frames.shape == (16, HEIGHT, WIDTH, 3)
    assert torch.equal(frames, torch.from_numpy(direct.frames.numpy()).float() / 255.0)
    with pytest.raises(InputError, match="refined already"):
        _run(package, "SanaWMRefine", model=model, video=refined, prompt=PROMPT, **refiner)
