"""``sana-wm export``: diffusers and official folders that diffusers and our ``--model_path`` load back.

Numbers, not shapes: diffusers' ``SanaWMTransformer3DModel`` loaded from an exported folder gives our output
(fp32, relative 1e-5), the demo folder runs as diffusers' ``SanaWMPipeline`` to our latents, and every
round trip through ``--model_path`` is bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.checkpoints import official_layout, same_state, tiny_model, tiny_registry  # noqa: F401
from helpers.parity import oracle_softmax_in_input_dtype, random_inputs, run_oracle
from helpers.training import DEBUG_RECIPE
from safetensors import safe_open

from sana_wm.cli import main
from sana_wm.models import load_transformer, tiny
from sana_wm.models.checkpoint_io import save_transformer

pytestmark = pytest.mark.usefixtures("one_thread")


def _inputs(cfg, seed: int = 0, frames: int = 3) -> dict[str, torch.Tensor]:
    """Random model inputs cut to ``cfg``'s latent and caption channels."""
    inputs = random_inputs(seed, 2, frames, 4, 6)
    inputs["latents"] = inputs["latents"][:, : cfg.in_channels].contiguous()
    inputs["text"] = inputs["text"][..., : cfg.caption_channels].contiguous()
    return inputs


def _ours(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**inputs)


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def _diffusers_matches_ours(folder: Path, model) -> float:
    from diffusers import SanaWMTransformer3DModel

    peer = SanaWMTransformer3DModel.from_pretrained(str(folder), torch_dtype=torch.float32).eval()
    inputs = _inputs(model.config)
    with oracle_softmax_in_input_dtype():  # diffusers' bf16 softmax casts off: a 1e-5 check needs fp32
        expected = run_oracle(peer, inputs)
    return _max_rel(_ours(model, inputs), expected)


def test_diffusers_transformer_folder(tmp_path: Path) -> None:
    model = tiny_model(1)  # fp32, every parameter perturbed
    save_transformer(model, tmp_path / "ours.safetensors")
    out = tmp_path / "diffusers"
    assert main(["export", "--model_path", str(tmp_path / "ours.safetensors"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    err = _diffusers_matches_ours(out, model)
    print(f"diffusers from the exported folder vs ours: max rel {err:.3g}")
    assert err <= 1e-5
    back = load_transformer(out)  # --model_path reads the folder
    assert back.config == model.config and same_state(back, model)


def test_chunk_causal_round_trips_both_formats(tmp_path: Path, tiny_registry) -> None:  # noqa: F811
    cfg = dataclasses.replace(tiny(), chunk_size=3, chunk_strategy="uniform")
    model = tiny_model(2, cfg, torch.bfloat16)
    save_transformer(model, tmp_path / "causal.safetensors")
    for fmt in ("diffusers", "official"):
        out = tmp_path / fmt
        assert (
            main(
                [
                    "export",
                    "--format",
                    fmt,
                    "--model_path",
                    str(tmp_path / "causal.safetensors"),
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
        path = out / "dit" / "sana_wm_chunk_causal_1600m_720p.safetensors" if fmt == "official" else out
        back = load_transformer(path)
        assert back.config == cfg and same_state(back, model), fmt
    config = json.loads((tmp_path / "diffusers" / "config.json").read_text())
    assert (config["_sana_wm_chunk_size"], config["_sana_wm_chunk_strategy"]) == (3, "uniform")


def test_official_single_file_is_bit_exact(tmp_path: Path, tiny_registry) -> None:  # noqa: F811
    import yaml

    model = tiny_model(3, dtype=torch.bfloat16)
    save_transformer(model, tmp_path / "ours.safetensors")
    out = tmp_path / "official"
    assert (
        main(
            [
                "export",
                "--format",
                "official",
                "--model_path",
                str(tmp_path / "ours.safetensors"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "config.yaml",
        "dit/sana_wm_1600m_720p.safetensors",
    ]
    file = out / "dit" / "sana_wm_1600m_720p.safetensors"
    expected = official_layout(model, prefix="")  # the official key names, minus the two never-read tensors
    del expected["pos_embed"], expected["y_embedder.y_embedding"]
    with safe_open(str(file), framework="pt") as handle:
        assert sorted(handle.keys()) == sorted(expected)
        for key in expected:
            assert (
                torch.equal(handle.get_tensor(key), expected[key])
                and handle.get_tensor(key).dtype == torch.bfloat16
            )
    official = yaml.safe_load((out / "config.yaml").read_text())
    assert official["model"]["model"] == "SanaMSVideoCamCtrl_1600M_P1_D20"
    assert official["model"]["camctrl_type"] == "BidirectionalGDNUCPESinglePathLiteLABothTriton"
    back = load_transformer(file)  # --model_path: config.yaml is found in the parent folder
    assert back.config == model.config and same_state(back, model)


def test_a_trained_model_round_trips(tmp_path: Path) -> None:
    run = tmp_path / "run"
    overrides = [f"out_dir={run}", "max_steps=2", "checkpoint.every=2", "data.num_clips=4"]
    assert main(["train", "run", "--recipe", str(DEBUG_RECIPE), *overrides]) == 0
    weights = tmp_path / "trained.safetensors"
    assert main(["train", "export", str(run), str(weights)]) == 0
    trained = load_transformer(weights)
    out = tmp_path / "trained_diffusers"
    assert main(["export", "--model_path", str(weights), "--out", str(out)]) == 0
    back = load_transformer(out)
    assert back.config == trained.config and same_state(back, trained)
    err = _diffusers_matches_ours(out, trained)
    print(f"trained debug model: diffusers from the exported folder vs ours: max rel {err:.3g}")
    assert err <= 1e-5


def test_demo_export_runs_as_a_diffusers_pipeline(tmp_path: Path) -> None:
    from diffusers import SanaWMPipeline

    from sana_wm.camera import action_to_c2w
    from sana_wm.inference import GenerationRequest, ModelSource, load
    from sana_wm.inference.demo_model import DEMO_DIR, demo_first_frame, read_demo_settings

    out = tmp_path / "demo"
    assert main(["export", "--out", str(out)]) == 0
    index = json.loads((out / "model_index.json").read_text())
    assert index["text_encoder"] == [None, None] and index["vae"] == ["diffusers", "AutoencoderKLLTX2Video"]
    assert json.loads((out / "scheduler" / "scheduler_config.json").read_text())["shift"] == 3.0
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == (
        DEMO_DIR / "vae" / "diffusion_pytorch_model.safetensors"
    ).read_bytes()
    assert same_state(load_transformer(out), load_transformer(DEMO_DIR / "transformer.safetensors"))

    settings = read_demo_settings()
    image, c2w = demo_first_frame(), action_to_c2w("w-8,jw-8")
    steps, seed = 2, 3
    pipe = load(ModelSource(demo_dir=DEMO_DIR))
    ours = pipe(
        GenerationRequest.create(
            image,
            "",
            c2w=c2w,
            intrinsics=settings.intrinsics_array(),
            **dataclasses.asdict(settings.sampling(steps=steps, seed=seed)),
        ),
        progress=False,
    )
    peer = SanaWMPipeline.from_pretrained(
        str(out), text_encoder=None, tokenizer=None, torch_dtype=torch.float32
    )
    peer.set_progress_bar_config(disable=True)
    # The null caption (one zero token) plus a masked padding token: diffusers cannot take a one-token mask
    # (it squeezes it away); the padding gets weight exp(-10000) = 0, so the numbers are the null caption's.
    null = torch.zeros(1, 1, 2, 8), torch.tensor([[1, 0]])
    with oracle_softmax_in_input_dtype():
        ref = peer(
            image=image,
            prompt="",
            c2w=c2w,
            intrinsics=list(settings.intrinsics_array()),
            height=settings.height,
            width=settings.width,
            num_frames=17,
            num_inference_steps=steps,
            guidance_scale=1.0,
            generator=torch.Generator().manual_seed(seed),
            prompt_embeds=null[0],
            prompt_attention_mask=null[1],
            negative_prompt_embeds=null[0],
            negative_prompt_attention_mask=null[1],
            output_type="latent",
        )
    err = (ours.latents - ref.latent).abs().max().item()
    print(f"demo: diffusers SanaWMPipeline from the export vs sana-wm: max |latents| diff {err:.3g}")
    assert ours.latents.shape == ref.latent.shape and err <= 1e-4
    np.testing.assert_allclose(ours.c2w, ref.c2w, atol=1e-6)


def _bad(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_bad_input_is_one_line_and_leaves_nothing(tmp_path: Path, capsys, monkeypatch) -> None:
    import sana_wm.export

    out = tmp_path / "out"
    assert "official registry has no model of depth 6" in _bad(
        capsys, ["export", "--format", "official", "--out", str(out)]
    )
    assert "--model_path: no such file or folder" in _bad(
        capsys, ["export", "--model_path", str(tmp_path / "none.safetensors"), "--out", str(out)]
    )
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a safetensors file")
    assert "--model_path: cannot read" in _bad(
        capsys, ["export", "--model_path", str(broken), "--out", str(out)]
    )
    model = tiny_model(4)
    state = model.state_dict()
    del state["final_layer.linear.weight"]
    from sana_wm.models.checkpoint_io import save_state_dict

    save_state_dict(state, model.config, tmp_path / "missing.safetensors")
    assert "1 missing (final_layer.linear.weight)" in _bad(
        capsys, ["export", "--model_path", str(tmp_path / "missing.safetensors"), "--out", str(out)]
    )
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    assert "not an empty folder" in _bad(capsys, ["export", "--out", str(full)])
    assert [p.name for p in full.iterdir()] == ["keep.txt"]

    def fail(*args, **kwargs):  # a failure after the transformer was written: the folder must vanish
        raise sana_wm.export.InputError("export: simulated failure while copying the VAE")

    monkeypatch.setattr(sana_wm.export, "_copy", fail)
    assert "simulated failure" in _bad(capsys, ["export", "--out", str(out)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.safetensors", "full", "missing.safetensors"]


def test_release_components_make_a_whole_pipeline(tmp_path: Path) -> None:
    """Transformer + VAE + Gemma-2 + tokenizer -> a SanaWMPipeline root that diffusers loads whole and
    runs (guidance, negative prompt) to the latents sana-wm gets from the same folder via --model_path."""
    from diffusers import SanaWMPipeline
    from helpers.tiny_parts import (
        HEIGHT,
        INTRINSICS,
        PROMPT,
        WIDTH,
        source_image,
        tiny_gemma,
        tiny_tokenizer,
        tiny_vae,
    )

    from sana_wm.inference import GenerationRequest
    from sana_wm.inference.pipeline import load_pipeline

    src = tmp_path / "src"
    save_transformer(tiny_model(5), src / "transformer.safetensors")
    tiny_vae().save_pretrained(src / "vae")
    tiny_gemma().save_pretrained(src / "gemma")
    tiny_tokenizer().save_pretrained(src / "gemma")
    out = tmp_path / "pipeline"
    argv = ["export", "--model_path", str(src / "transformer.safetensors"), "--out", str(out)]
    assert main([*argv, "--vae_path", str(src / "vae"), "--text_encoder_path", str(src / "gemma")]) == 0
    index = json.loads((out / "model_index.json").read_text())
    assert index["text_encoder"] == ["transformers", "Gemma2ForCausalLM"]
    assert index["tokenizer"] == ["transformers", "GemmaTokenizer"]

    image, camera = source_image(), dict(action="w-8,jw-8", intrinsics=INTRINSICS, num_frames=17)
    settings = dict(steps=2, seed=11, height=HEIGHT, width=WIDTH)
    peer = SanaWMPipeline.from_pretrained(str(out), torch_dtype=torch.float32)
    peer.set_progress_bar_config(disable=True)
    with oracle_softmax_in_input_dtype():
        ref = peer(
            image=image,
            prompt=PROMPT,
            negative_prompt="blurry",
            num_inference_steps=settings["steps"],
            guidance_scale=5.0,
            generator=torch.Generator().manual_seed(settings["seed"]),
            height=HEIGHT,
            width=WIDTH,
            output_type="latent",
            **camera,
        )
    ours = load_pipeline(out, vae_path=out, text_encoder_path=out / "text_encoder", device="cpu")
    got = ours(
        GenerationRequest.create(
            image, PROMPT, negative_prompt="blurry", cfg_scale=5.0, **camera, **settings
        ),
        progress=False,
    )
    err = (got.latents - ref.latent).abs().max().item()
    print(f"release-style export: diffusers SanaWMPipeline vs sana-wm from the same folder: max {err:.3g}")
    assert got.latents.shape == ref.latent.shape and err <= 1e-4
