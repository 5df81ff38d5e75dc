"""Ctrl-C and SIGTERM ask a long command to stop after the work in flight; a second one aborts at once.

Shared by ``caption`` and ``demo`` (finish the batch, everything before it is recorded) and ``backfill`` (let the
batches already sent settle, then print where to resume).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class GracefulStop:
    """Set by the first Ctrl-C / SIGTERM (or :meth:`request`); the second signal raises ``KeyboardInterrupt``."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""

    def request(self, reason: str) -> None:
        if not self.event.is_set():
            self.reason = reason
            self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[None]:
        """Install the handlers for the block (only the main thread may), then put the previous ones back."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum: int, frame: FrameType | None) -> None:
            if self.event.is_set():
                raise KeyboardInterrupt
            self.request(signal.Signals(signum).name)

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
