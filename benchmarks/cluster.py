"""A real Dask cluster on this machine, as separate processes: a ``dask scheduler`` and single-threaded
``dask worker`` processes on free ports of 127.0.0.1 (``bench-scale`` measures the steps on it; the
fault tests kill its workers). The workers import ``iss`` from this checkout.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.common import ROOT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def process_cluster(n_workers: int, logs: Path, warm: Callable[[], None] | None = None,
                    ) -> Iterator[tuple[str, list[subprocess.Popen], float]]:
    """A scheduler and ``n_workers`` workers, ended (terminated, then killed) when the block ends.

    Workers run without a nanny, so a killed worker stays dead, as a lost machine does.

    Parameters
    ----------
    n_workers : int
    logs : Path
        Folder receiving ``scheduler.log`` and ``worker<i>.log`` (files, not pipes: a chatty
        process never blocks on a full pipe).
    warm : callable, optional
        Run once on every worker before the block (``Client.run``), e.g. its imports.

    Yields
    ------
    (address, workers, warm_s)
        ``tcp://127.0.0.1:<port>``, the worker processes, and the seconds ``warm`` took.
    """
    import distributed

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    logs.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen] = []

    def start(args: list[str], name: str) -> subprocess.Popen:
        with (logs / f"{name}.log").open("wb") as out:
            return subprocess.Popen([sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT, env=env,
                                    cwd=ROOT, start_new_session=True)

    try:
        processes.append(start(["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
                                "--no-dashboard"], "scheduler"))
        workers = [start(["distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny",
                          "--no-dashboard", "--host", "127.0.0.1", "--memory-limit", "0", "--name", f"w{i}"],
                         f"worker{i}") for i in range(n_workers)]
        processes += workers
        warm_s = 0.0
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(n_workers, timeout=120)
            if warm is not None:
                tick = time.perf_counter()
                client.run(warm)
                warm_s = time.perf_counter() - tick
        yield address, workers, warm_s
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
