"""What ``sana-wm serve`` runs: check the bind and token rules, load the model, serve until Ctrl-C.

:class:`ServeConfig` is the whole run, checked where it is made; :func:`serve` loads the engine and runs
uvicorn; :func:`start_in_thread` runs the same server in a background thread (tests, the benchmark).
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sana_wm.errors import InputError
from sana_wm.serve.app import ServerOptions, create_app
from sana_wm.serve.protocol import ServeLimits

log = logging.getLogger("sana_wm")

MAX_CONNECTIONS = 128  # open connections and requests at once; more get HTTP 503 (uvicorn)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """One server.

    Attributes:
        host, port: where to listen (127.0.0.1 by default; any other address needs a token).
        token: required on every request and socket when set; ``"generate"``: a random one, printed.
        limits: what clients may ask for and upload.
        decode_lookahead: latent frames a non-causal VAE (the demo model's) holds back per chunk: 0 is the
            fastest and least exact, 3 exact to a few levels (``sana_wm.vae_stream``); 1 by default.
    """

    host: str = "127.0.0.1"
    port: int = 7860
    token: str | None = None
    limits: ServeLimits = field(default_factory=ServeLimits)
    decode_lookahead: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise InputError(f"--port: must be in [0, 65535], got {self.port}")
        if not 0 <= self.decode_lookahead <= 3:
            raise InputError(f"--decode_lookahead: must be 0, 1, 2 or 3, got {self.decode_lookahead}")
        if self.token is not None and self.token != "generate" and len(self.token) < 16:
            raise InputError("--token: at least 16 characters (or 'generate' for a random one)")
        if self.token is None and not is_loopback(self.host):
            raise InputError(
                f"--host {self.host}: binding beyond loopback needs --token (a secret, or 'generate')"
            )

    def resolved_token(self) -> str | None:
        return secrets.token_urlsafe(24) if self.token == "generate" else self.token


def build_app(engine: Any, config: ServeConfig, token: str | None, workdir: Path) -> Any:
    return create_app(engine, ServerOptions(token=token, limits=config.limits), workdir)


def serve(config: ServeConfig, source: Any, runtime: Any) -> None:
    """Load the model of ``source`` and serve until interrupted (prints the address, with the token)."""
    import uvicorn

    from sana_wm.serve.engine import load_engine

    _check_port(config.host, config.port)
    token = config.resolved_token()
    engine = load_engine(source, runtime, decode_lookahead=config.decode_lookahead)
    with tempfile.TemporaryDirectory(prefix="sana-wm-serve-") as workdir:
        app = build_app(engine, config, token, Path(workdir))
        shown = f"[{config.host}]" if ":" in config.host else config.host
        query = f"/?token={token}" if token else "/"
        print(
            f"sana-wm serve: {engine.kind} model on {engine.device}; open http://{shown}:{config.port}{query}"
        )
        uvicorn.run(
            app,
            host=config.host,
            port=config.port,
            ws_max_size=config.limits.max_message_bytes,
            limit_concurrency=MAX_CONNECTIONS,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )


class BackgroundServer:
    """A uvicorn server on a free loopback port in a thread; ``url`` once started; :meth:`stop` ends it."""

    def __init__(self, app: Any, config: ServeConfig) -> None:
        import uvicorn

        self.app = app
        port = config.port or _free_port()
        self.url = f"http://127.0.0.1:{port}"
        uv_config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            ws_max_size=config.limits.max_message_bytes,
            limit_concurrency=MAX_CONNECTIONS,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(uv_config)
        self.thread = threading.Thread(target=self.server.run, name="sana-wm-serve", daemon=True)

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("sana-wm serve: the background server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_in_thread(
    engine: Any, config: ServeConfig, workdir: Path, token: str | None = None
) -> BackgroundServer:
    """Serve ``engine`` on a free loopback port from a background thread (tests and the benchmark)."""
    return BackgroundServer(build_app(engine, config, token, workdir), config).start()


def _check_port(host: str, port: int) -> None:
    """Refuse a port that cannot be bound before the model is loaded (one line, not a uvicorn log)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as err:
            raise InputError(f"--host {host} --port {port}: cannot listen there ({err.strerror})") from None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
