"""Ctrl-C that lets a long run stop at a safe point: the first SIGINT is recorded, a second one aborts.

    with deferred_sigint() as stop:
        for step in ...:
            one_step()
            if stop.requested:
                save_checkpoint(); raise Interrupted("... --resume RUN")

Outside the main thread (where Python cannot install signal handlers) the flag simply never trips.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator


class StopFlag:
    requested: bool = False


@contextlib.contextmanager
def deferred_sigint(message: str = "stopping after the current step (Ctrl-C again to abort now)") -> Iterator[StopFlag]:
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: object) -> None:
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True
        print(message, file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
