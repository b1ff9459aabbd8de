"""Summaries of py-spy profiles: by library, by innermost function, by iss function."""

from __future__ import annotations

import sys

import pytest

from benchmarks.profiles import library, read_stacks, summarise

RAW = """process 12:"python -m iss.exec.reports";_run_module_as_main (<frozen runpy>:198);<module> (iss/exec/reports.py:5);render (iss/visualization/reports.py:10);project (iss/visualization/figures.py:60);fit_transform (sklearn/manifold/_t_sne.py:1000);_kl_divergence_bh (sklearn/manifold/_t_sne.py:250) 6
process 12:"python -m iss.exec.reports";_run_module_as_main (<frozen runpy>:198);<module> (iss/exec/reports.py:5);render (iss/visualization/reports.py:10);save (PIL/Image.py:2400);_save (PIL/JpegImagePlugin.py:800);select (selectors.py:415) 3
process 12:"python -m iss.exec.reports";_run_module_as_main (<frozen runpy>:198);<module> (iss/exec/reports.py:5);_find_and_load (<frozen importlib._bootstrap>:1176) 1
"""


def test_library_of_a_frame_file():
    assert library("sklearn/manifold/_t_sne.py") == "sklearn"
    assert library("/x/.venv/lib/python3.11/site-packages/numba/core/compiler.py") == "numba"
    assert library("iss/visualization/figures.py") == "iss"
    assert library("selectors.py") == "python"
    assert library("concurrent/futures/process.py") == "python"
    assert library("<frozen runpy>") == "python"


def test_summary_shares(tmp_path):
    path = tmp_path / "reports.txt"
    path.write_text(RAW)
    assert [count for _, count in read_stacks(path)] == [6, 3, 1]
    summary = summarise(path)
    assert summary["samples"] == 10
    # the innermost frame outside the standard library names the owner of each sample
    assert summary["by_library"] == {"sklearn": 0.6, "PIL": 0.3, "iss": 0.1}
    assert summary["self"]["_kl_divergence_bh (sklearn/manifold/_t_sne.py)"] == 0.6
    assert summary["iss_inclusive"]["render (iss/visualization/reports.py)"] == 0.9
    assert summary["iss_inclusive"]["project (iss/visualization/figures.py)"] == 0.6
    assert list(summary["by_library"].values()) == sorted(summary["by_library"].values(), reverse=True)


@pytest.mark.skipif(not (sys.platform.startswith("linux")), reason="py-spy profiles are recorded on Linux here")
def test_summary_of_a_real_py_spy_profile(tmp_path):
    import subprocess
    from pathlib import Path

    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        pytest.skip("py-spy is not installed in this environment (requirements.txt)")
    out = tmp_path / "profile.txt"
    script = tmp_path / "busy.py"
    script.write_text("import time\nimport numpy as np\n\ndef busy():\n    t = time.time()\n"
                      "    while time.time() - t < 2:\n        np.linalg.svd(np.random.rand(120, 120))\n\nbusy()\n")
    subprocess.run([str(spy), "record", "--nonblocking", "--rate", "50", "--format", "raw", "--output", str(out),
                    "--", sys.executable, str(script)], check=True, capture_output=True)
    summary = summarise(out)
    assert summary["samples"] >= 20
    assert "numpy" in summary["by_library"]
    assert any(name.startswith("busy ") for name in summary["self"]) or summary["by_library"]["numpy"] > 0.3
