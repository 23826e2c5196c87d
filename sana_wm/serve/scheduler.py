"""One generating session per device: a FIFO of waiting sessions and one worker thread that runs them.

:meth:`DeviceScheduler.submit` starts a session at once when the device is free; otherwise the session
waits and its client gets ``busy`` with its position (1: next), updated whenever the line moves. A full
line refuses with :class:`~sana_wm.serve.protocol.ProtocolError` ``queue_full``. Generation runs on the
worker thread, never on the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from pathlib import Path
from typing import Any

from sana_wm.serve.protocol import ProtocolError
from sana_wm.serve.session import LiveSession, run_session

log = logging.getLogger("sana_wm")


class DeviceScheduler:
    """Runs :class:`LiveSession` s on ``engine`` one at a time, in the order they were submitted."""

    def __init__(self, engine: Any, *, max_queue: int, workdir: Path) -> None:
        self.engine = engine
        self.max_queue = max_queue
        self.workdir = workdir
        self._cond = threading.Condition()
        self._waiting: deque[LiveSession] = deque()
        self.current: LiveSession | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="sana-wm-device", daemon=True)
        self._thread.start()

    def submit(self, session: LiveSession) -> int:
        """Queue ``session``; returns its position (0: it starts now)."""
        with self._cond:
            if self._closed:
                raise ProtocolError("shutting_down", "the server is shutting down")
            busy = self.current is not None or bool(self._waiting)
            if busy and len(self._waiting) >= self.max_queue:
                raise ProtocolError(
                    "queue_full", f"busy: {len(self._waiting)} sessions already wait; try later"
                )
            session.others_waiting = lambda: bool(self._waiting)
            self._waiting.append(session)
            position = len(self._waiting) if busy else 0
            self._cond.notify_all()
        return position

    def withdraw(self, session: LiveSession) -> None:
        """Stop ``session`` (at its next chunk if it runs) or take it out of the line."""
        session.stop()
        with self._cond:
            if session in self._waiting:
                self._waiting.remove(session)
                self._announce()

    def positions(self) -> dict[str, int]:
        with self._cond:
            return {s.id: i + 1 for i, s in enumerate(self._waiting)}

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closed = True
            waiting, self._waiting = list(self._waiting), deque()
            current = self.current
            self._cond.notify_all()
        for session in [*waiting, *([current] if current else [])]:
            session.stop()
        self._thread.join(timeout)

    def _announce(self) -> None:
        """Tell every waiting client its position (caller holds ``_cond``)."""
        for index, session in enumerate(self._waiting):
            session.emit(
                {
                    "type": "busy",
                    "position": index + 1,
                    "message": f"the device is busy: you are number {index + 1} in line",
                }
            )

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                session = self._waiting.popleft()
                self.current = session
                self._announce()
            try:
                if not session.stopped:
                    run_session(self.engine, session, self.workdir)
            except Exception:  # run_session reports its own failures; this keeps the worker alive regardless
                log.exception("serve: worker")
            finally:
                with self._cond:
                    self.current = None
