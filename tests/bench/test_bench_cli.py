"""``sana-wm bench`` run tiny on the CPU (both modes), and its bad-input behaviour."""

from __future__ import annotations

import json
import math

import pytest
import torch

from sana_wm.bench.flops import ClipShape, transformer_flops
from sana_wm.cli import main
from sana_wm.models import SanaWMTransformer, tiny


def _positive(value: float) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_tiny_transformer_run_matches_the_peer(tmp_path, capsys) -> None:
    out = tmp_path / "results" / "tiny.json"
    argv = ["bench", "--device", "cpu", "--tiny", "--frames", "9", "--repeats", "2", "--warmup", "0"]
    argv += ["--height", "64", "--width", "96", "--text-len", "32", "--fp32-reference", "--breakdown"]
    assert main([*argv, "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["environment"]["device"] == "cpu" and report["environment"]["diffusers"]
    assert report["settings"]["frames"] == [9] and report["settings"]["dtype"] == "float32"
    assert _positive(report["matmul_tflops"])

    (entry,) = report["lengths"]
    # 9 frames -> 2 latent frames of the 64x96 / 32 = 2x3 grid, batch 2, 32 text tokens.
    assert (entry["latent_frames"], entry["tokens_per_sample"]) == (2, 12)
    assert entry["flops"] == json.loads(json.dumps(transformer_flops(tiny(), ClipShape(2, 2, 2, 3, 32))))
    for side in ("ours", "peer"):
        result = entry[side]
        seconds = result["s_per_step"]
        assert len(result["s_each"]) == 2 and all(_positive(s) for s in result["s_each"])
        assert seconds == pytest.approx(sum(result["s_each"]) / 2)  # the median of two
        assert result["tokens_per_s"] == pytest.approx(2 * 12 / seconds)
        tflops = entry["flops"]["total"] / seconds / 1e12
        assert _positive(result["tflops"]) and result["tflops"] == pytest.approx(tflops)
        assert result["mfu"] is None  # a tiny CPU probe says nothing about utilisation (it gave > 300 %)
        assert result["peak_allocated_gib"] is None and result["peak_device_gib"] is None  # no CUDA here
    assert entry["peer_over_ours"] == pytest.approx(entry["peer"]["s_per_step"] / entry["ours"]["s_per_step"])
    # fp32 on the CPU: both sides compute the same function, softmax q/k/v in bf16 as diffusers does. A 1e-7
    # difference upstream can flip a bf16 rounding there, which moves single outputs by up to ~1e-4 (see
    # tests/helpers/parity.py); over the whole output the error stays far below that.
    assert 0 < entry["ours_vs_peer"]["rel_l2"] < 1e-4 and 0 < entry["ours_vs_peer"]["max_rel"] < 5e-4

    # The fp32 reference (fp32 softmax) differs from both only by the bf16 softmax both runs use.
    ref = report["fp32_reference"]
    assert ref["frames"] == 9 and _positive(ref["ours_fp32"]["s_per_step"])
    for side in ("ours", "peer"):
        assert 0 < ref[f"{side}_vs_fp32"]["rel_l2"] < 1e-3

    parts = entry["ours_breakdown"]
    times = [parts[kind][part]["ms"] for kind in ("gdn", "softmax") for part in ("attn", "cross_attn", "mlp")]
    assert all(_positive(t) for t in times) and sum(times) <= parts["total_ms"]
    assert all(_positive(parts[k][p]["tflops"]) for k in ("gdn", "softmax") for p in ("attn", "mlp"))

    printed = capsys.readouterr().out
    assert "| frames (latent) | ours s/step |" in printed and "\n| 9 (2) | " in printed


def test_tiny_pipeline_run_reports_every_stage(tmp_path) -> None:
    out = tmp_path / "pipe.json"
    argv = ["bench", "--mode", "pipeline", "--device", "cpu", "--tiny", "--frames", "9", "--steps", "1"]
    assert main([*argv, "--height", "64", "--width", "96", "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    (entry,) = report["lengths"]
    assert (entry["frames_generated"], entry["latent_frames"], entry["frames_decoded"]) == (9, 2, 9)
    timings = entry["timings_s"]
    for stage in ("text_encode", "vae_encode", "sampling", "decode"):
        assert _positive(timings[stage])
    assert timings["sampling_per_step"] == timings["sampling"]  # one step
    assert entry["total_s"] >= timings["text_encode"] + timings["sampling"] + timings["decode"]
    with torch.device("meta"):
        model = SanaWMTransformer(tiny())
    assert report["params"]["transformer"] == sum(p.numel() for p in model.parameters())


def test_tiny_stream_run_reports_every_variant(tmp_path) -> None:
    out = tmp_path / "stream.json"
    argv = ["bench", "--mode", "stream", "--device", "cpu", "--tiny", "--frames", "49"]
    assert main([*argv, "--height", "64", "--width", "96", "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    entries = {entry["variant"]: entry for entry in report["lengths"]}
    assert report["config"]["chunk_size"] == 3
    # 49 frames: chunks of latent frames [0, 4) and [4, 7); no frames without decoding; the refiner's sink
    # frame is dropped
    assert {v: (e["chunks"], e["frames_decoded"]) for v, e in entries.items()} == {
        "stage1_eager": (2, 0),
        "stage1": (2, 0),
        "decode": (2, 49),
        "refiner": (2, 48),
        "refiner_fp8": (2, 48),
    }
    for entry in entries.values():
        assert len(entry["chunk_s"]) == 2 and _positive(entry["first_chunk_s"]) and entry["cache_bytes"] > 0
        assert entry["realtime_factor"] == pytest.approx(1.5 / entry["steady_chunk_s"])


def test_stream_variants_run_only_those_asked_for(tmp_path) -> None:
    out = tmp_path / "stream.json"
    argv = [
        "bench",
        "--mode",
        "stream",
        "--device",
        "cpu",
        "--tiny",
        "--frames",
        "49",
        "--variants",
        "decode",
    ]
    assert main([*argv, "--height", "64", "--width", "96", "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert [(e["variant"], e["frames_decoded"]) for e in report["lengths"]] == [("decode", 49)]


BAD_INPUT = [
    (["--variants", "stage2"], "--variants: stream mode only"),
    (["--frames", "0"], "--frames: expected whole numbers >= 1"),
    (["--frames", "abc"], "--frames: expected whole numbers >= 1"),
    (["--frames", "9,,17"], "--frames"),
    (["--frames", "9,17,9"], "--frames: 9 given more than once"),
    (["--backend", "cuda"], "--backend: 'cuda' is not one of"),
    (["--offload", "model"], "--offload: 'model' is not one of none, group in transformer mode"),
    (["--height", "100"], "--height: must be a multiple of 32"),
    (["--repeats", "0"], "--repeats: must be a whole number >= 1"),
    (["--dtype", "int8"], "--dtype: 'int8' is not one of"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_INPUT)
def test_bad_input_is_one_line_and_no_json(tmp_path, capsys, flags: list[str], message: str) -> None:
    out = tmp_path / "r.json"
    assert main(["bench", "--device", "cpu", "--tiny", *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("sana-wm bench: error: ")
    assert list(tmp_path.iterdir()) == []


def test_unparsable_flag_exits_2_without_json(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--tiny", "--repeats", "two", "--out", str(tmp_path / "r.json")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--repeats" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a missing GPU")
def test_cuda_without_a_gpu_is_bad_input(tmp_path, capsys) -> None:
    assert main(["bench", "--device", "cuda", "--tiny", "--out", str(tmp_path / "r.json")]) == 2
    assert "--device: cuda requested but CUDA is not available" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
