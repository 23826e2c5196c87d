"""``sana-wm stream``: chunk-by-chunk generation with a chunk-causal model -> a growing mp4 and its sidecar.

With no weight flags it streams the bundled demo model on the CPU (many steps per chunk; its chunk-causal
patch when bundled, else its bidirectional weights run chunk-causally, with a warning); ``--official`` or any
weight flag selects the streaming release (``SANA-WM_streaming``: the distilled 4-step student, its causal
VAE). Flags follow the official ``inference_sana_wm_streaming.py`` (underscore
names; hyphen aliases accepted). The library side is :mod:`sana_wm.inference.stream_job`.
"""

from __future__ import annotations

import argparse

from sana_wm.cli._args import (
    add_camera_path_args,
    add_runtime_args,
    flag,
    job_fields,
    model_source,
    runtime_settings,
    silence_library_progress,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stream", help="stream a video chunk by chunk (chunk-causal model) into a growing mp4")
    p.add_argument("--image", metavar="FILE", help="first frame (default for the demo model: its own)")
    text = p.add_mutually_exclusive_group()
    text.add_argument("--prompt", metavar="FILE", help="UTF-8 text file holding the prompt")
    text.add_argument(*flag("--prompt_text"), dest="prompt_text", metavar="TEXT", help="the prompt itself")
    add_camera_path_args(p, required=False)
    p.add_argument(*flag("--intrinsics"), dest="intrinsics", metavar="FILE.npy", help="as for generate")
    p.add_argument(
        *flag("--num_frames"),
        dest="num_frames",
        type=int,
        help="frames (capped by the camera path, snapped down to 24k+1: whole chunks; default 241, demo 73)",
    )
    p.add_argument(*flag("--output_dir"), dest="output_dir", required=True, metavar="DIR")
    p.add_argument("--name", default="output", help="file name stem of the outputs (default: output)")
    p.add_argument("--seed", type=int, help="noise seed (default 42)")
    p.add_argument(
        *flag("--denoising_step_list"),
        dest="step_list",
        help='timesteps per chunk, ending at 0 (default for the release "1000,960,889,727,0"; the demo '
        "model is not distilled and walks --steps shifted steps)",
    )
    p.add_argument("--steps", type=int, help="steps per chunk without a step list (demo 30)")
    p.add_argument(*flag("--flow_shift"), dest="flow_shift", type=float, help="shift of those steps")
    p.add_argument(*flag("--cfg_scale"), dest="cfg_scale", type=float, help="guidance (default 1: none)")
    p.add_argument(*flag("--negative_prompt"), dest="negative_prompt", default="", metavar="TEXT")
    p.add_argument(
        *flag("--num_cached_blocks"),
        dest="num_cached_blocks",
        type=int,
        default=2,
        help="softmax window in chunks: the sink plus the latest W-1 (default 2; <= 0: every earlier chunk)",
    )
    p.add_argument(
        *flag("--no_sink_token"), dest="no_sink", action="store_true", help="let chunk 0 leave the window"
    )
    p.add_argument("--fps", type=float, help="frame rate of the mp4 (default 16)")
    p.add_argument("--height", type=int, help="default 704 (demo 192)")
    p.add_argument("--width", type=int, help="default 1280 (demo 352)")
    p.add_argument(*flag("--no_action_overlay"), dest="no_action_overlay", action="store_true", help="no HUD")
    weights = p.add_argument_group(
        "weights (default: the demo model; --official or a weight flag: the release)"
    )
    weights.add_argument(
        "--official", action="store_true", help="SANA-WM_streaming from the Hugging Face cache"
    )
    weights.add_argument(*flag("--demo_dir"), dest="demo_dir", metavar="DIR", help="a demo-model folder")
    weights.add_argument(
        *flag("--model_path"),
        dest="model_path",
        metavar="PATH",
        help="a streaming repo or folder (hf://Efficient-Large-Model/SANA-WM_streaming or ..._chunk_causal) "
        "or a checkpoint file",
    )
    weights.add_argument("--config", help="config.yaml (path or hf://) or a preset name")
    weights.add_argument(*flag("--vae_path"), dest="vae_path", metavar="DIR", help="causal LTX-2 VAE folder")
    weights.add_argument(
        *flag("--text_encoder_path"), dest="text_encoder_path", metavar="DIR", help="Gemma-2 folder"
    )
    refiner = p.add_argument_group(
        "the chunk-causal refiner (the release only, on by default; the video then starts at frame 1)"
    )
    refiner.add_argument(*flag("--no_refiner"), dest="no_refiner", action="store_true", help="stage 1 only")
    refiner.add_argument(
        *flag("--refiner_kv_max_frames"),
        dest="refiner_kv_max_frames",
        type=int,
        default=11,
        help="sink + history latent frames a refiner block attends to (11; at least 4)",
    )
    refiner.add_argument(
        *flag("--refiner_seed"), dest="refiner_seed", type=int, default=42, help="default 42"
    )
    refiner.add_argument(
        *flag("--refiner_checkpoint"),
        dest="refiner_checkpoint",
        metavar="DIR",
        help="transformer/ + connectors/",
    )
    refiner.add_argument(
        *flag("--refiner_gemma_root"), dest="refiner_gemma_root", metavar="DIR", help="the refiner's Gemma-3"
    )
    refiner.add_argument(
        *flag("--refiner_fp8"), dest="refiner_fp8", action="store_true", help="refiner weights in float8"
    )
    p.add_argument(
        *flag("--no_cuda_graphs"),
        dest="no_cuda_graphs",
        action="store_true",
        help="run every stage-1 forward eagerly (default on CUDA: replay graphs of the steady-state chunks)",
    )
    add_runtime_args(
        p,
        offload=("none", "group"),
        offload_help="group: stream the transformers' blocks from pinned CPU memory (less memory, slower)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sana_wm.inference.job import GenerateJob
    from sana_wm.inference.offload import prefer_expandable_segments
    from sana_wm.inference.stream_job import StreamJob, run_stream_job

    quiet = bool(getattr(args, "quiet", False))
    if quiet:
        silence_library_progress()
    prefer_expandable_segments(args.offload)  # before anything touches CUDA
    inputs = GenerateJob(
        source=model_source(args),
        runtime=runtime_settings(args),
        output_dir=args.output_dir,
        name=args.name,
        prompt_file=args.prompt,
        prompt_text=args.prompt_text,
        negative_prompt=args.negative_prompt,
        overlay=not args.no_action_overlay,
        refine=False,
        command="stream",
        **job_fields(args),
    )
    job = StreamJob(
        inputs=inputs,
        step_list=args.step_list,
        num_cached_blocks=args.num_cached_blocks,
        sink=not args.no_sink,
        refine=not args.no_refiner,
        refiner_kv_max_frames=args.refiner_kv_max_frames,
        refiner_seed=args.refiner_seed,
        refiner_fp8=args.refiner_fp8,
        cuda_graphs=not args.no_cuda_graphs,
    )
    result = run_stream_job(job, progress=not quiet)
    print(
        f"wrote {result.video} ({result.frames} frames in {result.chunks} chunks; first chunk after "
        f"{result.timings['first_chunk']:.1f} s) and {result.sidecar} in {result.timings['total']:.1f} s"
    )
    return 0
