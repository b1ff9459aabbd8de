"""Worker processes that never outlive the step that started them.

A pool worker blocks on its task queue; if the step's process dies without closing the pool
(``kill -9``, out of memory), nothing tells the worker, and it stays alive holding its memory.
Every pool initializer calls :func:`exit_with_parent` first: on Linux the kernel then sends the
worker ``SIGKILL`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread
checks the parent every second.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def exit_with_parent(parent_pid: int | None) -> None:
    """Make the calling process exit as soon as its parent process dies.

    Parameters
    ----------
    parent_pid : int or None
        The pid the parent had when it started this worker (``os.getpid()`` there). If the
        parent died before this call, the worker exits at once. None skips that check (a
        ``forkserver`` worker's parent is the fork server, which itself exits with the step).
    """
    armed = False
    if sys.platform.startswith("linux"):
        try:
            armed = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) == 0
        except (OSError, AttributeError):
            armed = False
    if not armed:
        threading.Thread(target=_watch_parent, args=(os.getppid(),), name="exit-with-parent", daemon=True).start()
    if parent_pid is not None and os.getppid() != parent_pid:  # died before the signal was armed
        os._exit(1)


def _watch_parent(parent_pid: int, every: float = 1.0) -> None:
    while os.getppid() == parent_pid:
        time.sleep(every)
    os._exit(1)
