"""A demo-model server on a free loopback port, shared by the serve tests (tiny settings: 64 x 96 frames,
2 steps per chunk, so a chunk takes well under a second on a 2-core CPU)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TINY = {"height": 64, "width": 96, "steps": 2}


@pytest.fixture(scope="session")
def engine() -> Any:
    from sana_wm.inference.request import RuntimeSettings
    from sana_wm.inference.source import choose_model
    from sana_wm.serve.engine import load_engine

    return load_engine(choose_model(), RuntimeSettings(device="cpu"))


def start_server(engine: Any, tmp: Path, token: str | None = None, **limits: Any) -> Any:
    from sana_wm.serve.protocol import ServeLimits
    from sana_wm.serve.server import ServeConfig, start_in_thread

    config = ServeConfig(port=0, limits=ServeLimits(**{"max_chunks": 4, **limits}))
    return start_in_thread(engine, config, tmp, token=token)


@pytest.fixture
def server(engine: Any, tmp_path: Path) -> Iterator[Any]:
    running = start_server(
        engine, tmp_path, max_upload_bytes=64 * 1024, max_upload_pixels=300 * 300, max_queue=2
    )
    yield running
    running.stop()


class Client:
    """A synchronous protocol client (``websockets``)."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        from websockets.sync.client import connect

        self.ws = connect(url.replace("http://", "ws://") + "/ws", max_size=2**25, **kwargs).__enter__()
        self.hello = self.next("hello")

    def send(self, message: Any) -> None:
        self.ws.send(message if isinstance(message, str | bytes) else json.dumps(message))

    def recv(self, timeout: float = 30.0) -> dict[str, Any]:
        return json.loads(self.ws.recv(timeout=timeout))

    def next(self, kind: str, timeout: float = 30.0) -> dict[str, Any]:
        """Messages until one of ``kind`` (frames and chunks skipped unless asked for)."""
        while True:
            message = self.recv(timeout)
            if message["type"] == kind:
                return message
            if message["type"] == "error" and kind != "error":
                raise AssertionError(f"unexpected error: {message}")

    def close(self) -> None:
        self.ws.close()
