"""The benchmarks' process runner: memory of the whole tree, limits, and nothing left running."""

from __future__ import annotations

import sys
import time

import psutil
import pytest

from benchmarks.measure import run_measured

PY = sys.executable
ALLOCATE = "import numpy as np, time; a = np.ones({mb} * 2**20 // 8); time.sleep({sleep})"


def _gone(pid: int) -> bool:
    """True when ``pid`` has ended (a zombie waiting for its parent counts as ended)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_ok_run_records_peak_memory_and_cpu(tmp_path):
    log = tmp_path / "run.log"
    measured = run_measured([PY, "-c", ALLOCATE.format(mb=300, sleep=1.5) + "; print('done')"],
                            time_limit_s=120, log_path=log)
    assert measured.status == "ok" and measured.returncode == 0
    assert 280 <= measured.peak_rss_mb < 1000
    assert 0 < measured.peak_pss_mb <= measured.peak_rss_mb + 1
    assert measured.wall_s >= 1.5 and measured.cpu_s > 0
    assert "done" in log.read_text()


def test_memory_of_child_processes_is_counted():
    script = ("import multiprocessing as mp, numpy as np, time\n"
              "def work(_):\n    a = np.ones(200 * 2**20 // 8); time.sleep(2); return 1\n"
              "if __name__ == '__main__':\n    print(sum(mp.get_context('fork').Pool(2).map(work, range(2))))")
    measured = run_measured([PY, "-c", script], time_limit_s=120)
    assert measured.ok and measured.peak_processes >= 3
    assert measured.peak_rss_mb >= 2 * 200


def test_failed_command_is_recorded_as_failed():
    measured = run_measured([PY, "-c", "raise SystemExit(3)"], time_limit_s=60)
    assert measured.status == "failed" and measured.returncode == 3


def test_memory_cap_stops_the_run():
    script = "import numpy as np, time\nblocks = []\nwhile True:\n    blocks.append(np.ones(50 * 2**20 // 8)); time.sleep(0.05)"
    measured = run_measured([PY, "-c", script], time_limit_s=120, memory_limit_mb=400)
    assert measured.status == "memory_limit"
    assert measured.peak_rss_mb > 400 and measured.wall_s < 60
    assert measured.as_dict()["limits"] == {"time_s": 120, "memory_mb": 400}


@pytest.mark.parametrize("own_session", [False, True])
def test_time_limit_kills_every_descendant(tmp_path, own_session):
    """A grandchild in the group, or one that left it (its own session), is stopped with the run."""
    pid_file = tmp_path / "grandchild.pid"
    script = (f"import subprocess, time\n"
              f"p = subprocess.Popen(['sleep', '300'], start_new_session={own_session})\n"
              f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
              f"time.sleep(300)")
    started = time.monotonic()
    measured = run_measured([PY, "-c", script], time_limit_s=3)
    assert measured.status == "time_limit"
    assert time.monotonic() - started < 30
    assert _gone(int(pid_file.read_text()))
