"""Run the whole pipeline on a generated ISS-like collection and the embedded SQLite database.

Reads: nothing (generates ``data/external/demo``). Writes: everything the steps write —
``data/``, ``models/``, ``reports/``, ``data/posters/`` — and prints where the results are.

    iss demo                          # = make demo = python -m iss.exec.demo
    iss demo --n-frames 300 --set training.epochs=5
"""

from __future__ import annotations

import logging
from typing import Optional

import typer

from iss.exec.common import SetOption, setup_logging, step_app, step_config, step_errors

log = logging.getLogger("iss.exec.demo")
app = step_app(__doc__)


@app.command()
def demo(n_frames: Optional[int] = typer.Option(None, "--n-frames", min=1,
                                                help="Frames to generate (default: demo.n_frames)."),
         mode: str = typer.Option("demo", "--mode", help="Config mode."),
         settings: Optional[list[str]] = SetOption,
         progress: bool = typer.Option(True, help="Show progress bars.")) -> None:
    """Generate the demo collection and run every step on it."""
    setup_logging()
    from iss.pipeline import run_pipeline, summary

    with step_errors(log):
        cfg = step_config(mode, settings, {"demo": {"n_frames": n_frames}} if n_frames else None)
    result = run_pipeline(cfg, generate=True, progress=progress)
    typer.echo(summary(result))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
