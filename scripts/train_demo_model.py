"""Train the demo world model bundled in ``sana_wm/assets/demo/``, from nothing, in one command.

    python scripts/train_demo_model.py --out DIR [--minutes 8.3]      # the bundled model (one H100/H200)
    python scripts/train_demo_model.py --out DIR --tiny --device cpu  # the whole procedure in seconds
    python scripts/train_demo_model.py --out DIR2 --init_from DIR     # a second DiT budget (same VAE)
    python scripts/train_demo_model.py --out DIR3 --init_from sana_wm/assets/demo --chunk_causal --minutes 4
                                                                      # the chunk-causal patch (one GPU)
    python scripts/train_demo_model.py --out DIR4 --init_from sana_wm/assets/demo --distill --minutes 12
                                                                      # the 4-step streaming student

The same from the repository root as a module: ``python -m scripts.demo_training.run ARGS``.

Recipe (numbers: ``demo_training.recipe.full``; phases: ``demo_training.run``):

- Data: procedural worlds (``sana_wm.worlds``) along random camera paths (action strings under both key
  mappings and smooth free paths), 81-frame clips at 192 x 352 (the 704 x 1280 aspect to 1 %; 176 x 320 is
  exact but not a multiple of the VAE's 32-pixel stride), 16 fps, shadows on. The device renders for 10 % of
  the budget while CPU worker processes render until the VAE is done. Every clip is used as rendered,
  mirrored left-right, reversed in time, and both (exact symmetries of a static world). Held out: clips of
  another seed and the demo world whose frame 0 is the bundled first frame.
- VAE: diffusers ``AutoencoderKLLTX2Video`` with LTX-2's block layout at small widths (8x temporal, 32x
  spatial, 32 latent channels, ~4.4 M parameters), trained from scratch for 23 % of the budget: first on
  batches of 64 single frames (half of its time: colour and layout come from many pictures), then on batches
  of 8 random 17-frame windows; L1 + 0.5 L1 of image gradients + L1 of 8 x 8 block means + 2 L1 of their
  chroma + 1e-5 KL, AdamW 5e-4, bf16 autocast; the decoder's output layer starts at zero weights and the
  data's mean colour (without both, the per-location RMS norms let it collapse to a grey mean for hundreds of
  steps, and a short run ends grey or two-tone). Its per-channel latent mean/std are set from the training
  latents.
- DiT: our ``SanaWMTransformer`` (width 224 = 2 heads of 112, 6 blocks alternating GDN and softmax
  attention; camera branch with UCPE and Plücker injection in every block; ~7.5 M parameters), trained with
  ``sana_wm.train.Trainer`` on the cached latents: flow matching with logit-normal timesteps and shift 3,
  frame 0 always the clean image condition, batch 32, AdamW 4e-4 with warm-up and cosine decay, EMA 0.995,
  for the rest of the budget but 30 s.
- Text: prompt-free. Training and sampling use the null caption of
  ``sana_wm.inference.demo_model.null_text`` (one all-zero token) and no guidance.
- Evaluation: the saved files are loaded with ``sana_wm.inference.demo_model.load_demo_pipeline``; held-out
  clips and the demo world are generated along their true camera paths and compared with the true renders
  (PSNR, agreement of the image motion), the demo world also with the mirrored action.

Writes exactly these files to ``--out`` (weights in fp16): ``transformer.safetensors``,
``vae/config.json``, ``vae/diffusion_pytorch_model.safetensors``, ``first_frame.png``, ``demo_model.json``
(settings, recipe, data, metrics, timings), ``MODEL_CARD.md`` (the card with its numbers filled in),
``sample.mp4`` (true render | generated | generated with the mirrored action) and ``train_log.txt``. Copy
all but the last two into ``sana_wm/assets/demo/``. Trainer checkpoints go to ``--work_dir`` (default: a
temporary folder).

``--chunk_causal`` (with ``--init_from``, e.g. the bundled model) fine-tunes that model's transformer into the
chunk-causal variant and writes only ``transformer_chunk_causal.safetensors`` (a patch of about 1.2 M of
its parameters over ``transformer.safetensors``, ``sana_wm.inference.demo_patch``), ``demo_model.json`` (the
input's with a ``"chunk_causal"`` entry added), ``sample_chunk_causal.mp4`` and ``train_log.txt``; copy the
first two into ``sana_wm/assets/demo/`` (recipe: ``demo_training.chunk_causal``).

``--distill`` (with ``--init_from``, e.g. the bundled model with its chunk-causal patch) distills that
chunk-causal teacher into the 4-step streaming student by ODE regression then self-forcing DMD and writes
``transformer_student.safetensors`` (a patch over ``transformer.safetensors`` like the chunk-causal one),
``demo_model.json`` (the input's with a ``"student"`` entry) and ``train_log.txt``; copy the first two into
``sana_wm/assets/demo/`` (recipe: ``demo_training.distill``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
from pathlib import Path

LOG_FILE = "train_log.txt"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output folder (created; must be empty or new)")
    p.add_argument("--minutes", type=float, default=8.3, help="wall-clock budget of the whole run (8.3)")
    p.add_argument("--tiny", action="store_true", help="the tiny recipe: 64 x 96, a few steps (tests)")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--work_dir", type=Path, default=None, help="trainer checkpoints (default: temporary)")
    p.add_argument("--cpu_workers", type=int, default=None, help="CPU render processes (default: cores - 3)")
    p.add_argument(
        "--init_from",
        type=Path,
        default=None,
        metavar="DIR",
        help="continue an earlier run's output: keep its VAE, start the DiT from its weights, new clips",
    )
    p.add_argument(
        "--chunk_causal",
        action="store_true",
        help="with --init_from: fine-tune its DiT chunk-causally and write only the patch file",
    )
    p.add_argument(
        "--distill",
        action="store_true",
        help="with --init_from: distill its chunk-causal teacher into the 4-step student (patch file only)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from demo_training.recipe import full, tiny
    from demo_training.run import train_demo_model

    from sana_wm.errors import InputError

    out: Path = args.out
    for flag, wanted in (("--chunk_causal", args.chunk_causal), ("--distill", args.distill)):
        if wanted and args.init_from is None:
            print(f"train_demo_model: error: {flag} needs --init_from (the model to patch)", file=sys.stderr)
            return 2
    if args.chunk_causal and args.distill:
        print("train_demo_model: error: --chunk_causal and --distill are separate runs", file=sys.stderr)
        return 2
    if out.exists() and any(out.iterdir()):
        print(f"train_demo_model: error: --out: {out} is not empty", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    recipe = tiny() if args.tiny else full()
    if args.cpu_workers is not None:
        recipe = dataclasses.replace(recipe, cpu_workers=args.cpu_workers)

    logger = logging.getLogger("sana_wm")
    handlers = [logging.StreamHandler(sys.stdout), logging.FileHandler(out / LOG_FILE, encoding="utf-8")]
    formatter = logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with tempfile.TemporaryDirectory(prefix="sana_wm_demo_") as tmp:
            work_dir = args.work_dir or Path(tmp)
            logger.info("training the demo model on %s for %.1f min -> %s", device, args.minutes, out)
            if args.distill:
                from demo_training.distill import distill_student

                metadata = distill_student(
                    recipe,
                    out,
                    device=device,
                    minutes=args.minutes,
                    work_dir=work_dir,
                    init_from=args.init_from,
                    tiny=args.tiny,
                )
            else:
                metadata = train_demo_model(
                    recipe,
                    out,
                    device=device,
                    minutes=args.minutes,
                    work_dir=work_dir,
                    init_from=args.init_from,
                    chunk_causal=args.chunk_causal,
                )
        key = "chunk_causal" if args.chunk_causal else "student" if args.distill else None
        record = metadata[key] if key else metadata
        logger.info("done in %.0f s: %s", record["timings_s"]["total"], sorted(p.name for p in out.iterdir()))
    except InputError as err:
        print(f"train_demo_model: error: {err}", file=sys.stderr)
        return 2
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
