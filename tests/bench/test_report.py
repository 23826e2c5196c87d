"""Markdown rows of the benchmark report, including lengths where one side ran out of memory."""

from __future__ import annotations

from sana_wm.bench.report import pipeline_rows, transformer_rows


def _side(seconds: float, alloc: float, device: float, mfu: float) -> dict:
    return {
        "s_per_step": seconds,
        "tokens_per_s": 2 * 36080 / seconds,
        "peak_allocated_gib": alloc,
        "peak_device_gib": device,
        "mfu": mfu,
    }


def test_transformer_rows_format_numbers_and_oom() -> None:
    body = {
        "lengths": [
            {
                "frames": 321,
                "latent_frames": 41,
                "ours": _side(3.0, 14.21, 15.5, 0.2534),
                "peer": _side(3.8, 19.1, 20.04, 0.2),
                "peer_over_ours": 3.8 / 3.0,
                "ours_vs_peer": {"max_rel": 0.0123, "rel_l2": 0.00456},
            },
            {"frames": 961, "latent_frames": 121, "ours": _side(10.0, 40.0, 42.0, 0.3), "peer": "oom"},
        ]
    }
    assert transformer_rows(body) == [
        "| 321 (41) | 3.00 | 3.80 | 1.27× | 24053 | 14.2 / 15.5 | 19.1 / 20.0 | 25.3% | 20.0% "
        "| 1.23e-02 / 4.56e-03 |",
        "| 961 (121) | 10.00 | oom | — | 7216 | 40.0 / 42.0 | oom | 30.0% | oom | — |",
    ]


def test_pipeline_rows_format_stages_and_oom() -> None:
    timings = {
        "text_encode": 2.5,
        "vae_encode": 0.5,
        "sampling": 6.0,
        "sampling_per_step": 1.5,
        "decode": 1.75,
    }
    body = {
        "lengths": [
            {
                "frames": 161,
                "frames_generated": 161,
                "latent_frames": 21,
                "steps": 4,
                "timings_s": timings,
                "peak_allocated_max_gib": 16.84,
                "peak_device_gib": 18.0,
            },
            {"frames": 961, "steps": 4, "result": "oom"},
        ]
    }
    assert pipeline_rows(body) == [
        "| 161 (21) | 4 | 2.50 | 0.50 | 6.00 | 1.50 | 1.75 | 16.8 | 18.0 |",
        "| 961 | 4 | oom | oom | oom | oom | oom | oom | oom |",
    ]
