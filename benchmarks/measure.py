"""Run a command as a user would, and measure it: wall time, peak memory of its whole process
tree, CPU time, under a time limit and a memory cap (``bench-peers`` and ``bench-e2e`` use it).

The command starts in a new session (its own process group). A watcher polls the tree (the
process and every descendant, found through psutil) every ``poll_s`` seconds and records the
peak of

- ``peak_rss_mb``: the sum of the resident set sizes of the tree; a page shared by two
  processes (forked workers) counts twice, so this is an upper bound, and what the cap compares;
- ``peak_pss_mb``: the sum of the proportional set sizes (shared pages split between their
  users, Linux ``smaps_rollup``), the tree's fair share of memory.

When the run passes ``time_limit_s`` or its RSS passes ``memory_limit_mb`` the whole group gets
SIGTERM, then SIGKILL after a grace period, and so does any descendant that left the group; the
run is recorded with ``status`` ``time_limit`` or ``memory_limit`` and the figures it reached.
Nothing it started outlives the call, also when the caller is interrupted.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

MB = 1024 * 1024
GRACE_S = 5.0


@dataclass
class Measured:
    """What one measured run did.

    ``status`` is ``ok`` (exit 0), ``failed`` (another exit code), ``time_limit`` or
    ``memory_limit`` (stopped by the watcher). Times in seconds, memory in MiB. ``cpu_s`` is
    user + system time of the tree (the last ``poll_s`` of each process may be missed).
    """

    status: str
    returncode: int | None
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    peak_pss_mb: float
    peak_processes: int
    log: str | None = None
    limits: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict:
        out = asdict(self)
        for key in ("wall_s", "cpu_s", "peak_rss_mb", "peak_pss_mb"):
            out[key] = round(out[key], 1)
        return out


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _memory(procs: list[psutil.Process], with_pss: bool, cpu_seen: dict[int, float]) -> tuple[float, float]:
    """(RSS, PSS) of ``procs`` in MiB (PSS 0 unless ``with_pss``); records each one's CPU seconds in ``cpu_seen``."""
    rss = pss = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            cpu_seen[proc.pid] = times.user + times.system
            if with_pss:
                info = proc.memory_full_info()
                pss += getattr(info, "pss", info.rss)
            else:
                info = proc.memory_info()
            rss += info.rss
        except psutil.Error:  # exited between the listing and the read
            continue
    return rss / MB, pss / MB


def _stop(proc: subprocess.Popen, known: dict[int, psutil.Process]) -> None:
    """SIGTERM the process group and every descendant seen, SIGKILL what is left after GRACE_S."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for child in list(known.values()):
            try:
                child.send_signal(sig)
            except psutil.Error:
                known.pop(child.pid, None)
        if sig == signal.SIGTERM:
            try:
                proc.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                pass
            psutil.wait_procs(list(known.values()), timeout=GRACE_S)
    proc.wait()


def run_measured(cmd: list[str], *, env: dict | None = None, cwd: str | Path | None = None,
                 time_limit_s: float | None = None, memory_limit_mb: float | None = None,
                 log_path: str | Path | None = None, poll_s: float = 0.25, pss_every: int = 4) -> Measured:
    """Run ``cmd`` to its end or to a limit, measuring its whole process tree.

    Parameters
    ----------
    cmd : list of str
        The command (no shell).
    env : dict, optional
        Its environment (default: this process's).
    cwd : str or Path, optional
        Its working folder.
    time_limit_s : float, optional
        Stop it after this many seconds of wall time (``status="time_limit"``).
    memory_limit_mb : float, optional
        Stop it when the RSS of its tree passes this many MiB (``status="memory_limit"``).
    log_path : str or Path, optional
        Its stdout and stderr go there (default: discarded).
    poll_s : float, default=0.25
        Seconds between two looks at the tree (a peak shorter than this can be missed).
    pss_every : int, default=4
        Read the PSS every this many polls (it reads ``smaps``, dearer than the RSS).

    Returns
    -------
    Measured
    """
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    status, peak_rss, peak_pss, peak_n = None, 0.0, 0.0, 0
    known: dict[int, psutil.Process] = {}
    cpu_seen: dict[int, float] = {}
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        root = psutil.Process(proc.pid)
        polls = 0
        while proc.poll() is None:
            procs = _tree(root)
            known.update((p.pid, p) for p in procs)
            rss, pss = _memory(procs, polls % pss_every == 0, cpu_seen)
            peak_rss, peak_pss, peak_n = max(peak_rss, rss), max(peak_pss, pss), max(peak_n, len(procs))
            elapsed = time.perf_counter() - start
            if memory_limit_mb and rss > memory_limit_mb:
                status = "memory_limit"
            elif time_limit_s and elapsed > time_limit_s:
                status = "time_limit"
            if status:
                _stop(proc, known)
                break
            polls += 1
            time.sleep(poll_s)
    finally:
        if proc.poll() is None:  # interrupted (Ctrl-C) or a watcher error: leave nothing behind
            _stop(proc, known)
        else:  # descendants left running after the command ended (daemons of its own)
            leftovers = {pid: p for pid, p in known.items() if pid != proc.pid and p.is_running()}
            if leftovers:
                _stop(proc, leftovers)
        if log is not subprocess.DEVNULL:
            log.close()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # what the kernel counted for reaped descendants, or what the polls saw of each process (a
    # process whose parent never reaps it, e.g. under py-spy, is missing from the first)
    cpu = max((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), sum(cpu_seen.values()))
    if status is None:
        status = "ok" if proc.returncode == 0 else "failed"
    return Measured(status=status, returncode=proc.returncode, wall_s=wall, cpu_s=cpu, peak_rss_mb=peak_rss,
                    peak_pss_mb=max(peak_pss, 0.0), peak_processes=peak_n,
                    log=str(log_path) if log_path else None,
                    limits={"time_s": time_limit_s, "memory_mb": memory_limit_mb})


def tail(path: str | Path | None, lines: int = 15) -> str:
    """The last ``lines`` lines of a log file ('' when there is none)."""
    if not path or not Path(path).is_file():
        return ""
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])


def machine_state() -> dict:
    """Cores, memory and load now, recorded with every benchmark (the machine is shared)."""
    vm = psutil.virtual_memory()
    return {"cpus": os.cpu_count(), "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "memory_total_gb": round(vm.total / 1024**3, 1), "memory_available_gb": round(vm.available / 1024**3, 1)}
