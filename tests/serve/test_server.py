"""The server over real sockets (uvicorn on a free loopback port, the demo model at 64 x 96, 2 steps)."""

from __future__ import annotations

import base64
import io
import json
import socket
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from websockets.exceptions import ConnectionClosed

from sana_wm.camera import action_to_c2w
from sana_wm.utils.video_io import read_video

from .conftest import TINY, Client, start_server


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers or {}), timeout=10
        ) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _frames_until_ended(client: Client) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    frames = []
    while True:
        message = client.recv()
        if message["type"] == "frame":
            frames.append(message)
        elif message["type"] == "ended":
            return frames, message
        elif message["type"] == "error":
            raise AssertionError(message)


def test_keys_drive_the_camera_and_the_recording_holds_the_poses_used(server: Any, tmp_path: Path) -> None:
    client = Client(server.url)
    assert client.hello["model"] == "demo" and client.hello["limits"]["max_chunks"] == 4
    client.send({"type": "start", "settings": {**TINY, "max_chunks": 4, "pause_when_idle": False}})
    started = client.next("started")
    assert (started["height"], started["width"], started["frames"]) == (64, 96, 97)
    held = {0: frozenset(), 1: frozenset("w"), 2: frozenset("l")}
    client.send({"type": "keys", "keys": ["w"], "seq": 1})
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["keys_seq"] != 1:  # the first frame made with W: release it, press L
        message = client.recv()
        if message["type"] == "frame":
            frames.append(message)
    client.send({"type": "keys", "keys": ["l"], "seq": 2})
    more, ended = _frames_until_ended(client)
    frames += more
    assert ended["reason"] == "max_length" and ended["frames"] == 97 == len(frames)
    assert [f["index"] for f in frames] == list(range(97))
    # Each chunk followed the keys held just before it was sampled: the per-frame key state rolled out by
    # the action language gives the poses the frames report, exactly.
    seqs = [f["keys_seq"] for f in frames]
    assert seqs[0] == -1 and seqs[-1] == 2 and {1, 2} <= set(seqs) <= {-1, 0, 1, 2}
    action = ",".join(f"{''.join(sorted(held[s])) or 'none'}-1" for s in seqs[1:])
    expected = action_to_c2w(action)
    reported = np.array([f["c2w"] for f in frames])
    np.testing.assert_allclose(reported, expected, atol=2e-6)
    first_l = seqs.index(2)
    assert frames[first_l - 1]["pose"]["position"][2] > 1.0 and frames[-1]["pose"]["yaw_deg"] > 20
    assert first_l % 24 == 1  # a key change applies from a chunk boundary on
    # The JPEGs decode to the session's size and the picture changes along the walk.
    pictures = [
        np.asarray(Image.open(io.BytesIO(base64.b64decode(f["jpeg"])))) for f in (frames[0], frames[-1])
    ]
    assert pictures[0].shape == (64, 96, 3) and np.abs(pictures[0].astype(int) - pictures[1]).mean() > 5
    # The download: the mp4 of every frame and a sidecar with the poses used.
    status, body = _get(server.url + ended["download"])
    assert status == 200
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        names = sorted(archive.namelist())
        sidecar = json.loads(archive.read(names[0]))
        data = archive.read(names[1])
    (tmp_path / "world.mp4").write_bytes(data)
    assert read_video(tmp_path / "world.mp4")[0].shape[0] == 97
    np.testing.assert_allclose(np.array(sidecar["c2w"]), expected, atol=1e-6)
    assert sidecar["settings"]["keys_seq"] == seqs and sidecar["settings"]["command"] == "serve"
    client.close()


def test_one_session_per_device_the_rest_wait_in_line(server: Any) -> None:
    first, second, third, fourth = (Client(server.url) for _ in range(4))
    first.send({"type": "start", "settings": TINY})  # pause_when_idle: holds the device, paused
    first.next("started")
    first.next("state")
    second.send({"type": "start", "settings": TINY})
    assert second.next("busy")["position"] == 1
    third.send({"type": "start", "settings": TINY})
    assert third.next("busy")["position"] == 2
    fourth.send({"type": "start", "settings": TINY})
    refused = fourth.next("error")
    assert refused["code"] == "queue_full"
    first.send({"type": "stop"})
    assert first.next("ended")["reason"] == "stopped"
    assert second.next("started")["session"]
    assert third.next("busy")["position"] == 1
    # A closed tab stops its generation at the next chunk and hands the device on.
    second.close()
    assert third.next("started", timeout=20)
    for client in (first, third, fourth):
        client.close()


def test_hostile_messages_get_errors_and_the_server_keeps_serving(server: Any) -> None:
    client = Client(server.url)
    hostile = [
        "nonsense",
        b"\x00" * 100,
        json.dumps({"type": "keys", "keys": ["w"], "seq": 1}),  # no session yet
        json.dumps({"type": "start", "image": "A" * 200_000}),  # over the upload limit
        "[" * 50_000,
        json.dumps({"type": "start", "settings": {"height": -32}}),
    ]
    codes = []
    for message in hostile:
        client.send(message)
        codes.append(client.next("error")["code"])
    assert codes == ["bad_json", "bad_message", "no_session", "upload_too_large", "bad_json", "bad_settings"]
    client.send({"type": "ping", "t": 1})
    assert client.next("pong")["t"] == 1
    # A message over the socket limit closes only that socket; a new one is served.
    with pytest.raises(ConnectionClosed):
        client.send("x" * (client.hello["limits"]["max_message_bytes"] + 10))
        client.recv(timeout=5)
    again = Client(server.url)
    again.send({"type": "start", "image": _png_b64(80, 64), "settings": {**TINY, "max_chunks": 1}})
    assert again.next("started")["width"] == 96
    assert again.next("ended")["frames"] == 25
    again.close()


def _png_b64(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (height, width, 3), dtype=np.uint8)).save(
        buffer, "PNG"
    )
    return base64.b64encode(buffer.getvalue()).decode()


def test_token_every_request_and_socket(engine: Any, tmp_path: Path) -> None:
    token = "s3cret-token-of-some-length"
    running = start_server(engine, tmp_path, token=token)
    try:
        url = running.url
        assert _get(url + "/")[0] == 401
        assert _get(url + "/static/app.js")[0] == 401
        assert _get(url + "/api/info?token=wrong-token-of-some-length")[0] == 401
        assert _get(url + "/api/info", {"Authorization": f"Bearer {token}"})[0] == 200
        assert _get(url + f"/?token={token}")[0] == 200
        assert _get(url + "/static/app.js", {"Cookie": f"sana_wm_token={token}"})[0] == 200
        with pytest.raises(Exception, match="403"):
            Client(url)
        from websockets.sync.client import connect

        with connect(url.replace("http", "ws") + f"/ws?token={token}") as ws:
            assert json.loads(ws.recv(timeout=10))["type"] == "hello"
    finally:
        running.stop()


def test_loopback_only_without_a_token_and_no_cross_site_sockets(server: Any) -> None:
    assert _get(server.url + "/", {"Host": "evil.example:80"})[0] == 403  # DNS rebinding
    assert _get(server.url + "/", {"Host": "localhost:1"})[0] == 200
    with pytest.raises(Exception, match="403"):
        Client(server.url, origin="http://evil.example")
    assert Client(server.url, origin=server.url).hello["type"] == "hello"


def test_bind_rules() -> None:
    from sana_wm.cli import main

    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert main(["serve", "--token", "short"]) == 2
    assert main(["serve", "--max_upload_mb", "-1"]) == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["serve", "--port", str(taken.getsockname()[1])]) == 2  # refused before loading the model


def test_camera_messages_drive_the_next_chunk(server: Any) -> None:
    client = Client(server.url)
    client.send({"type": "start", "settings": {**TINY, "max_chunks": 2}})
    client.next("started")
    assert client.next("state")["state"] == "paused"  # after the first chunk, nothing held
    given = action_to_c2w("l-12,w-12")[1:]  # the next 24 poses: turn right, then walk
    client.send({"type": "camera", "c2w": given.tolist()})
    frames, ended = _frames_until_ended(client)
    assert ended["frames"] == 49
    by_index = {f["index"]: f for f in frames}
    np.testing.assert_allclose([by_index[i]["c2w"] for i in range(25, 49)], given, atol=1e-6)
    assert {by_index[i]["keys_seq"] for i in range(25, 49)} == {-1}
    assert by_index[48]["pose"]["yaw_deg"] == pytest.approx(12 * 1.2, abs=1e-3)
    client.send({"type": "camera", "c2w": [[[0] * 4] * 4]})
    assert client.next("error")["code"] == "bad_camera"
    client.close()


def test_a_paused_session_others_wait_for_ends_after_the_idle_timeout(engine: Any, tmp_path: Path) -> None:
    running = start_server(engine, tmp_path, idle_timeout_s=1.0)
    try:
        first, second = Client(running.url), Client(running.url)
        first.send({"type": "start", "settings": TINY})
        first.next("started")
        assert first.next("state")["state"] == "paused"
        second.send({"type": "start", "settings": TINY})
        assert second.next("busy")["position"] == 1
        ended = first.next("ended", timeout=15)
        assert ended["reason"] == "idle_timeout" and ended["download"]  # its recording stays downloadable
        assert second.next("started", timeout=15)["session"]
        first.close()
        second.close()
    finally:
        running.stop()


def test_an_engine_that_does_not_record_sends_the_same_frames_and_offers_no_download(
    engine: Any, tmp_path: Path
) -> None:
    def run() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        server = start_server(engine, tmp_path)
        try:
            client = Client(server.url)
            client.send({"type": "start", "settings": {**TINY, "max_chunks": 2}})
            client.next("started")
            client.next("state")
            client.send({"type": "camera", "c2w": action_to_c2w("w-24")[1:].tolist()})
            got = _frames_until_ended(client)
            client.close()
            return got
        finally:
            server.stop()

    recorded, ended = run()
    assert ended["download"] is not None
    engine.record = False
    try:
        sent, ended = run()
    finally:
        engine.record = True
    assert ended["download"] is None and ended["frames"] == 49
    assert [f["jpeg"] for f in sent] == [f["jpeg"] for f in recorded]
