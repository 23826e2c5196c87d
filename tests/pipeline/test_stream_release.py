"""``sana-wm stream`` on a tiny release in the ``SANA-WM_streaming`` layout (a training checkpoint read
tensors-only, a causal VAE, Gemma-2, the chunk-causal refiner): the whole path runs, with and without the
refiner, and frames, poses and sidecar line up."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.checkpoints import TINY_STREAMING, save_training_checkpoint, tiny_model, training_checkpoint
from helpers.parity import perturb_all_parameters
from helpers.tiny_parts import PROMPT, save_png, source_image

from sana_wm.cli import main
from sana_wm.utils.video_io import read_sidecar, read_video


@pytest.fixture(scope="module")
def release(tmp_path_factory, tiny_dirs):
    from sana_wm.tiny import tiny_ltx2_vae

    root = tmp_path_factory.mktemp("streaming_release")
    student = tiny_model(1, TINY_STREAMING)
    perturb_all_parameters(student, 1)
    save_training_checkpoint(root / "sana_dit" / "model.pt", training_checkpoint(student, tiny_model(2)))
    tiny_ltx2_vae(16, decoder_causal=True).save_pretrained(root / "ltx2_causal_vae")
    config = tmp_path_factory.mktemp("streaming_config") / "streaming.json"
    config.write_text(json.dumps(TINY_STREAMING.to_dict()))
    return root, config


def _args(release, tiny_dirs, refiner_dir, tmp_path) -> list[str]:
    root, config = release
    return [
        "stream",
        "--model_path", str(root), "--config", str(config),
        "--text_encoder_path", str(tiny_dirs.text_encoder),
        "--refiner_checkpoint", str(refiner_dir), "--refiner_gemma_root", str(refiner_dir / "text_encoder"),
        "--image", save_png(tmp_path / "first.png", source_image()), "--prompt_text", PROMPT,
        "--action", "w-30,jw-30", "--num_frames", "49", "--height", "64", "--width", "96",
        "--output_dir", str(tmp_path), "--quiet",
    ]  # fmt: skip


@pytest.mark.parametrize("refine", [True, False])
def test_stream_release_layout(release, tiny_dirs, refiner_dir, tmp_path, refine) -> None:
    args = _args(release, tiny_dirs, refiner_dir, tmp_path) + ([] if refine else ["--no_refiner"])
    assert main(args) == 0
    frames, _ = read_video(tmp_path / "output.mp4")
    sidecar = read_sidecar(tmp_path / "output.json")
    expected = 48 if refine else 49  # the refiner's sink frame is not part of the video
    assert frames.shape == (expected, 64, 96, 3)
    assert sidecar.c2w.shape == (expected, 4, 4)
    assert (sidecar.settings["refiner"] is not None) == refine
    from sana_wm.camera import action_to_c2w

    first = 1 if refine else 0
    assert torch.allclose(
        torch.as_tensor(sidecar.c2w), torch.as_tensor(action_to_c2w("w-30,jw-30")[first:49])
    )


def test_serve_streams_a_release_layout(release, tiny_dirs, tmp_path) -> None:
    """``sana-wm serve --model_path ...``: a prompted chunk-causal release behind the WebSocket protocol."""
    from websockets.sync.client import connect

    from sana_wm.inference.request import RuntimeSettings
    from sana_wm.inference.source import ModelSource
    from sana_wm.serve.engine import load_engine
    from sana_wm.serve.protocol import ServeLimits
    from sana_wm.serve.server import ServeConfig, start_in_thread

    root, config = release
    source = ModelSource(
        model_path=str(root), config=str(config), text_encoder_path=str(tiny_dirs.text_encoder)
    )
    engine = load_engine(source, RuntimeSettings(device="cpu"))
    assert engine.kind == "release" and not engine.prompt_free
    server = start_in_thread(engine, ServeConfig(port=0, limits=ServeLimits(max_chunks=2)), tmp_path)
    try:
        with connect(server.url.replace("http://", "ws://") + "/ws", max_size=2**25) as ws:
            settings = {"height": 64, "width": 96, "max_chunks": 2, "pause_when_idle": False}
            ws.send(json.dumps({"type": "start", "prompt": PROMPT, "settings": settings}))
            ws.send(json.dumps({"type": "keys", "keys": ["w"]}))
            frames, ended = [], None
            while ended is None:
                message = json.loads(ws.recv(timeout=60))
                assert message["type"] != "error", message
                frames += [message] if message["type"] == "frame" else []
                ended = message if message["type"] == "ended" else None
    finally:
        server.stop()
    assert ended["frames"] == len(frames) == 49
    assert [f["index"] for f in frames] == list(range(49))
    assert frames[-1]["pose"]["position"][2] > frames[0]["pose"]["position"][2]  # W walked forward (+Z)
