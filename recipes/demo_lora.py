"""LoRA-adapt the bundled demo model to a world family it never saw: the procedural worlds without shadows
(the demo model was trained on worlds with hard shadows). One GPU, a few minutes::

    sana-wm worlds render --num_clips 256 --frames 81 --size 192x352 --seed 7 --no_shadows \\
        --out worlds_noshadow --device cuda
    sana-wm cache-latents worlds_noshadow --vae sana_wm/assets/demo/vae --device cuda
    sana-wm train run --recipe recipes/demo_lora.py
    sana-wm train export runs/demo_lora noshadow.safetensors --weights lora_ema
    sana-wm eval-world --demo_dir sana_wm/assets/demo --no_shadows --out eval/noshadow_lora \\
        --lora noshadow.safetensors

The model and its training settings are the demo's (``scripts/demo_training/recipe.py``: flow shift 3,
every sample image-conditioned, the demo's one caption, which is zeros: ``data.text_encoder=none`` feeds the
same cross-attention input); only the rank-16 adapters on the attention projections train.
"""

from pathlib import Path

from sana_wm.models.checkpoint_io import load_transformer
from sana_wm.train.checkpoint import CheckpointConfig
from sana_wm.train.config import RunConfig
from sana_wm.train.dataset import DataConfig
from sana_wm.train.ema import EMAConfig
from sana_wm.train.lora import LoraConfig
from sana_wm.train.losses import LossConfig
from sana_wm.train.metrics import MetricsConfig
from sana_wm.train.optim import OptimConfig
from sana_wm.train.parallel import ParallelConfig

DEMO_TRANSFORMER = (
    Path(__file__).resolve().parents[1] / "sana_wm" / "assets" / "demo" / "transformer.safetensors"
)


def demo_lora() -> RunConfig:
    return RunConfig(
        model=load_transformer(DEMO_TRANSFORMER).config,
        data=DataConfig(
            kind="zip",
            raw_dir="worlds_noshadow/raw",
            latent_dir="worlds_noshadow/latents",
            text_encoder="none",
            num_workers=4,
        ),
        loss=LossConfig(
            flow_shift=3.0, image_condition_prob=1.0, caption_dropout_prob=0.0, null_caption="zeros"
        ),
        optim=OptimConfig(lr=5e-4, weight_decay=0.0, grad_clip=1.0, warmup_steps=50, schedule="cosine"),
        ema=EMAConfig(decay=0.99),
        parallel=ParallelConfig(activation_checkpointing=False),
        checkpoint=CheckpointConfig(every=200, keep_last=2),
        metrics=MetricsConfig(log_every=20, tensorboard=False),
        lora=LoraConfig(rank=16, alpha=16.0),
        out_dir="runs/demo_lora",
        max_steps=1000,
        global_batch_size=32,
        init_from=str(DEMO_TRANSFORMER),
    )
