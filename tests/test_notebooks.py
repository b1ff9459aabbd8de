"""The exploration notebooks run top to bottom on a small run (with the venv's Python as kernel)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from iss.config import load_config
from iss.db.engine import get_engine
from tests.synthetic import make_synthetic_run

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
KERNEL_NAME = "iss-test-venv"


@pytest.fixture
def venv_kernel(tmp_path, monkeypatch) -> str:
    """A kernelspec running this interpreter (the venv's), visible only to this test (JUPYTER_PATH)."""
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "iss test (venv)", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL_NAME


@pytest.fixture
def demo_root(tmp_path, monkeypatch) -> Path:
    """A project root with a small clustering run in the demo config's database and cache."""
    root = tmp_path / "project"
    cfg = load_config(mode="demo", root=root)
    engine = get_engine(cfg.database_url)
    make_synthetic_run(cfg, engine, n_pictures=80, n_clusters=4)
    engine.dispose()
    monkeypatch.setenv("ISS_ROOT", str(root))  # read by iss.config in the kernel
    monkeypatch.setenv("MODE", "demo")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name", ["2.0-iss-explore-run.ipynb"])
def test_notebook_runs_top_to_bottom(name, venv_kernel, demo_root):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(notebook, kernel_name=venv_kernel, timeout=300,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError, with the cell and traceback, if any cell fails
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    kinds = {k for o in outputs for k in o.get("data", {})}
    assert "image/png" in kinds  # the silhouette chart and the mosaics
    pngs = sum("image/png" in o.get("data", {}) for o in outputs)
    assert pngs >= 1 + 4  # one chart + one mosaic per cluster
    assert "application/vnd.bokehjs_exec.v0+json" in kinds or "application/javascript" in kinds  # the scatter
    text = json.dumps([o.get("data", {}).get("text/markdown", "") for o in outputs])
    assert "80 pictures in 4 clusters" in text
