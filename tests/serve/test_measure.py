"""The serve benchmark's client against a live server (tiny settings): it times what it says it times."""

from __future__ import annotations

from typing import Any

from sana_wm.serve.measure import measure

from .conftest import TINY


def test_measure_latency_and_fps(engine: Any, tmp_path: Any) -> None:
    from .conftest import start_server

    server = start_server(engine, tmp_path, max_chunks=12)
    try:
        result = measure(server.url, TINY, presses=2, walk_chunks=4)
    finally:
        server.stop()
    assert (result["height"], result["width"]) == (64, 96)
    assert len(result["rest_latency_s"]) == 2 and all(0 < s < 30 for s in result["rest_latency_s"])
    assert result["walk_latency_s"] and all(0 < s < 30 for s in result["walk_latency_s"])
    # Frames come a chunk (24) at a time: at least the 3 walking chunks after the first were timed.
    assert result["frames_timed"] >= 3 * 24 and result["sustained_fps"] > 1
    assert 0 < result["first_frame_s"] < 30
