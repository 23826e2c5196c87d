"""Latency and frame rate of a running ``sana-wm serve``, measured by a protocol client (what a browser sees,
minus its drawing).

One session, two phases:

1. **from rest** (``pause_when_idle``): after the first chunk the session waits; the client presses W and
   times key press → the first frame made from that key state (its ``keys_seq``), releases, waits until
   the session pauses again; ``presses`` times. This is the latency of a world that waits for you: one
   chunk's sampling and decoding (plus what the decoder holds back).
2. **walking**: W held for ``walk_chunks`` chunks, the key state switched (W ↔ W+L) once per chunk at a
   random moment (uniform over the previous chunk's duration after its chunk message); per switch, key
   change → first frame made from it (the chunk being sampled when the key changed finishes first: about
   1.5 chunk times on average), and the sustained frame rate: frames received per second from the second
   walking chunk on.

Times are the client's clock at send and at receipt (loopback: no network in them).
"""

from __future__ import annotations

import json
import random
import statistics
import time
from typing import Any


def measure(url: str, settings: dict[str, Any], *, presses: int = 3, walk_chunks: int = 6) -> dict[str, Any]:
    """Drive the server at ``url`` (``http://host:port``, token in the query if needed); returns the
    numbers (seconds, frames per second) and the session's frame size."""
    from websockets.sync.client import connect

    ws_url = url.replace("http://", "ws://").replace("https://", "wss://")
    base, _, query = ws_url.partition("?")
    with connect(base.rstrip("/") + "/ws" + (f"?{query}" if query else ""), max_size=2**28) as ws:

        def recv(timeout: float = 600.0) -> dict[str, Any]:
            message = json.loads(ws.recv(timeout=timeout))
            if message["type"] == "error":
                raise RuntimeError(f"server error: {message}")
            return message

        def send(message: dict[str, Any]) -> float:
            ws.send(json.dumps(message))
            return time.perf_counter()

        recv()  # hello
        chunks = 1 + 2 * presses + walk_chunks + 2
        started_at = send({"type": "start", "settings": {**settings, "max_chunks": chunks}})
        started = _until(recv, "started")
        first_frame_s = None
        while True:  # the first chunk, then the pause
            message = recv()
            if message["type"] == "frame" and first_frame_s is None:
                first_frame_s = time.perf_counter() - started_at
            if message["type"] == "state" and message["state"] == "paused":
                break
        seq = 0
        rest_latency = []
        for _ in range(presses):
            seq += 1
            pressed = send({"type": "keys", "keys": ["w"], "seq": seq})
            while True:
                message = recv()
                if message["type"] == "frame" and message["keys_seq"] >= seq:
                    rest_latency.append(time.perf_counter() - pressed)
                    break
            seq += 1
            send({"type": "keys", "keys": [], "seq": seq})
            while not (message["type"] == "state" and message["state"] == "paused"):
                message = recv()
        walk_latency, frame_times = [], []
        seq += 1
        walk_start = seq  # from rest again: not a walking latency
        changed = {seq: send({"type": "keys", "keys": ["w"], "seq": seq})}
        walked, switch_at, rng = 0, None, random.Random(0)
        while walked < walk_chunks:
            wait = 600.0 if switch_at is None else max(0.0, switch_at - time.perf_counter())
            try:
                message = recv(wait)
            except TimeoutError:
                seq += 1
                changed[seq] = send({"type": "keys", "keys": ["w", "l"] if seq % 2 else ["w"], "seq": seq})
                switch_at = None
                continue
            if message["type"] == "frame":
                frame_times.append(time.perf_counter())
                seen = [s for s in changed if s <= message["keys_seq"]]
                if seen and max(seen) != walk_start:
                    walk_latency.append(frame_times[-1] - changed[max(seen)])
                for s in seen:
                    del changed[s]
            elif message["type"] == "chunk":
                walked += 1
                if walked == 1:
                    frame_times.clear()  # the sustained rate starts with the second walking chunk
                if switch_at is None:
                    switch_at = time.perf_counter() + rng.uniform(0.0, message["seconds"])
            elif message["type"] == "ended":
                break
        send({"type": "stop"})
        _until(recv, "ended")
    fps = (len(frame_times) - 1) / (frame_times[-1] - frame_times[0]) if len(frame_times) > 1 else None
    return {
        "height": started["height"],
        "width": started["width"],
        "device": started["device"],
        "first_frame_s": first_frame_s,
        "rest_latency_s": rest_latency,
        "rest_latency_median_s": statistics.median(rest_latency) if rest_latency else None,
        "walk_latency_s": walk_latency,
        "walk_latency_median_s": statistics.median(walk_latency) if walk_latency else None,
        "sustained_fps": fps,
        "frames_timed": len(frame_times),
    }


def _until(recv: Any, kind: str) -> dict[str, Any]:
    while True:
        message = recv()
        if message["type"] == kind:
            return message
