"""The ``sana-wm serve`` web application (FastAPI): the page, the WebSocket, the recordings, and the guard.

Routes: ``GET /`` (the page), ``GET /static/<file>`` (its script and style, from the package: works
offline), ``GET /api/info`` (limits and defaults), ``GET /api/recording/<session>.zip`` (the mp4 and its
sidecar), ``WS /ws`` (the protocol, :mod:`sana_wm.serve.protocol`).

The guard (:class:`Guard`, an ASGI middleware in front of everything): with a token, every HTTP request and
WebSocket must carry it (``?token=``, ``Authorization: Bearer``, or the cookie the page sets after the first
visit with ``?token=``), else 401 / the socket is refused before it opens. Without a token (loopback only)
the ``Host`` must be a loopback name, so a web page elsewhere cannot reach the server through DNS
rebinding. A WebSocket whose ``Origin`` is another site is refused either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import json
import logging
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, Response

from sana_wm.serve.protocol import Camera, Control, Keys, ProtocolError, ServeLimits, Start, parse_message
from sana_wm.serve.scheduler import DeviceScheduler
from sana_wm.serve.session import LiveSession

log = logging.getLogger("sana_wm")

STATIC = Path(__file__).resolve().parent / "static"
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css", "index.html": "text/html"}
COOKIE = "sana_wm_token"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
SLOW_CLIENT_S = 60.0  # a full outbox for this long ends the session
OUTBOX_MESSAGES = 256  # per connection: about ten chunks of frames; a slower client slows its generation


@dataclass(frozen=True)
class ServerOptions:
    token: str | None = None
    limits: ServeLimits = ServeLimits()


class Guard:
    """ASGI middleware: the token, the loopback ``Host`` rule and the WebSocket ``Origin`` rule."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refused = self.refusal(scope)
        if refused is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await receive()  # the websocket.connect event
            await send({"type": "websocket.close", "code": 1008, "reason": refused[1]})
            return None
        body = f"refused: {refused[1]}\n".encode()
        await send(
            {
                "type": "http.response.start",
                "status": refused[0],
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return None

    def refusal(self, scope: dict[str, Any]) -> tuple[int, str] | None:
        """None, or the HTTP status (401: token, 403: host or origin) and the reason."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if self.token is None:
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
            if name not in LOOPBACK_HOSTS:
                return 403, "this server answers only to loopback host names (bind elsewhere with --token)"
        elif not self._has_token(scope, headers):
            return 401, "missing or wrong token"
        origin = headers.get("origin")
        if scope["type"] == "websocket" and origin and urlsplit(origin).netloc != host:
            return 403, "cross-origin WebSocket"
        return None

    def _has_token(self, scope: dict[str, Any], headers: dict[str, str]) -> bool:
        assert self.token is not None
        given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given.append(auth[7:].strip())
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is just no cookie
            cookie = SimpleCookie()
        if COOKIE in cookie:
            given.append(cookie[COOKIE].value)
        expected = self.token.encode()
        return any(hmac.compare_digest(item.encode(), expected) for item in given)


def create_app(engine: Any, options: ServerOptions, workdir: Path) -> Any:
    """The ASGI application (FastAPI behind :class:`Guard`). ``app.state.scheduler`` runs the sessions."""
    scheduler = DeviceScheduler(engine, max_queue=options.limits.max_queue, workdir=workdir)

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(scheduler.close)  # stop the session at its next chunk, end the worker

    app = FastAPI(title="sana-wm serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.scheduler = scheduler
    recordings: dict[str, LiveSession] = {}
    info = _info(engine, options)

    @app.get("/")
    def page(token: str | None = None) -> Response:
        response = HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' blob: data:; connect-src 'self'; style-src 'self'"
        )
        if token is not None:
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            return Response("not found\n", status_code=404, media_type="text/plain")
        return Response((STATIC / name).read_bytes(), media_type=STATIC_FILES[name])

    @app.get("/api/info")
    def api_info() -> JSONResponse:
        return JSONResponse(
            {**info, "busy": scheduler.current is not None, "waiting": len(scheduler.positions())}
        )

    @app.get("/api/recording/{name}")
    def recording(name: str) -> Response:
        session = recordings.get(name.removesuffix(".zip"))
        folder = session.recording if session is not None else None
        if folder is None or not name.endswith(".zip") or not folder.is_dir():
            return Response("no such recording\n", status_code=404, media_type="text/plain")
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for file in ("world.mp4", "world.json"):
                archive.write(folder / file, f"sana-wm-{session.id[:8]}-{file}")
        headers = {"Content-Disposition": f'attachment; filename="sana-wm-{session.id[:8]}.zip"'}
        return Response(buffer.getvalue(), media_type="application/zip", headers=headers)

    @app.websocket("/ws")
    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        connection = Connection(websocket, scheduler, options.limits, recordings)
        sender = asyncio.create_task(connection.send_loop())
        connection.post({"type": "hello", **info})
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                await connection.handle(message.get("text", message.get("bytes")))
        except WebSocketDisconnect:
            pass
        finally:
            connection.close()
            sender.cancel()

    return Guard(app, options.token)


class Connection:
    """One WebSocket: parses client messages, owns at most one session, and an outbox the worker fills."""

    def __init__(
        self,
        websocket: Any,
        scheduler: DeviceScheduler,
        limits: ServeLimits,
        recordings: dict[str, LiveSession],
    ) -> None:
        self.websocket, self.scheduler, self.limits, self.recordings = (
            websocket,
            scheduler,
            limits,
            recordings,
        )
        self.loop = asyncio.get_running_loop()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=OUTBOX_MESSAGES)
        self.session: LiveSession | None = None
        self.open = True

    def post(self, message: dict[str, Any]) -> None:
        """Queue a message from the event loop (dropped if the outbox is full: only errors can be)."""
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            pass

    def emit(self, message: dict[str, Any]) -> bool:
        """Queue a message from the worker thread; waits while the outbox is full. False: the connection is
        gone, or its client has not read for :data:`SLOW_CLIENT_S` (it then loses its session: a client
        that stops reading must not hold the device)."""
        deadline = time.monotonic() + SLOW_CLIENT_S
        while self.open:
            if time.monotonic() > deadline:
                log.warning("serve: a client read nothing for %.0f s; its session ends", SLOW_CLIENT_S)
                self.open = False
                break
            try:
                future = asyncio.run_coroutine_threadsafe(self._put(message), self.loop)
            except RuntimeError:  # the event loop is gone (the server is shutting down)
                return False
            try:
                if future.result(timeout=1.0):
                    return True
            except Exception:  # the wait timed out or the loop is closing: look at self.open again
                future.cancel()
        return False

    async def _put(self, message: dict[str, Any]) -> bool:
        try:
            await asyncio.wait_for(self.outbox.put(message), timeout=0.9)
            return True
        except TimeoutError:
            return False

    async def send_loop(self) -> None:
        try:
            while True:
                message = await self.outbox.get()
                await self.websocket.send_text(json.dumps(message, separators=(",", ":")))
        except Exception:  # the socket closed under us; handled by the receive side
            self.open = False

    async def handle(self, text: str | bytes | None) -> None:
        try:
            session = self.session
            mapping = session.settings.mapping if session is not None else "v1"
            if isinstance(text, str) and len(text) > 65536:  # an upload: decode it off the event loop
                message = await asyncio.to_thread(parse_message, text, self.limits, mapping)
            else:
                message = parse_message(text, self.limits, mapping)
            await self._dispatch(message)
        except ProtocolError as err:
            self.post({"type": "error", "code": err.code, "message": str(err)})
        except Exception:  # nothing a client sends may take the server down
            log.exception("serve: message")
            self.post({"type": "error", "code": "internal", "message": "the server could not handle that"})

    async def _dispatch(self, message: Any) -> None:
        session = self.session
        if isinstance(message, Start):
            if session is not None and session.state != "ended":
                raise ProtocolError("already_started", "start: a session runs; stop or reset it first")
            self._drop_recording()
            session = LiveSession(message.image, message.prompt, message.settings, self.limits, self.emit)
            self.session = session
            self.recordings[session.id] = session
            position = self.scheduler.submit(session)
            if position:
                self.post(
                    {
                        "type": "busy",
                        "position": position,
                        "message": f"the device is busy: you are number {position} in line",
                    }
                )
        elif isinstance(message, Keys | Camera):
            if session is None or session.state == "ended":
                raise ProtocolError(
                    "no_session", f"{type(message).__name__.lower()}: no session runs; start one"
                )
            if isinstance(message, Keys):
                session.set_keys(message.letters, message.seq)
            else:
                try:
                    session.queue_poses(message.c2w_F44)
                except ValueError as err:
                    raise ProtocolError("bad_camera", str(err)) from None
        elif isinstance(message, Control):
            if message.kind == "ping":
                self.post({"type": "pong", "t": message.echo})
            elif session is not None:
                self.scheduler.withdraw(session)
                if message.kind == "reset":
                    self._drop_recording()
                    self.post({"type": "state", "state": "reset"})

    def _drop_recording(self) -> None:
        session = self.session
        if session is None:
            return
        self.scheduler.withdraw(session)
        with session.lock:
            session.discarded = True  # a recording the worker finishes later is deleted by it
            folder, session.recording = session.recording, None
        self.recordings.pop(session.id, None)
        if folder is not None:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
        self.session = None

    def close(self) -> None:
        """The tab closed: stop its session at the next chunk and forget its recording."""
        self.open = False
        self._drop_recording()


def _info(engine: Any, options: ServeLimits | ServerOptions) -> dict[str, Any]:
    limits = options.limits if isinstance(options, ServerOptions) else options
    d = engine.defaults
    return {
        "model": engine.kind,
        "device": engine.device,
        "prompt_free": engine.prompt_free,
        "defaults": {
            "height": d.height,
            "width": d.width,
            "steps": d.steps,
            "fps": d.fps,
            "distilled": bool(d.step_list),
        },
        "limits": {**asdict(limits), "max_message_bytes": limits.max_message_bytes},
        "mappings": ["v1", "v2"],
    }
