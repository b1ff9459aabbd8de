"""Run the whole pipeline on a generated ISS-like collection and the embedded SQLite database.

Reads: nothing (generates ``data/external/demo``). Writes: everything the steps write —
``data/``, ``models/``, ``reports/``, ``data/posters/`` — and prints where the results are.
"""

from __future__ import annotations

import typer

from iss.config import load_config
from iss.exec.common import setup_logging
from iss.pipeline import run_pipeline, summary

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def demo(n_frames: int = typer.Option(None, help="Frames to generate (default: demo.n_frames)"),
         mode: str = typer.Option("demo", help="Config mode"),
         progress: bool = typer.Option(True, help="Show progress bars")) -> None:
    """Generate the demo collection and run every step on it."""
    setup_logging()
    cfg = load_config(mode=mode, overrides={"demo": {"n_frames": n_frames}} if n_frames else None)
    result = run_pipeline(cfg, generate=True, progress=progress)
    typer.echo(summary(result))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
