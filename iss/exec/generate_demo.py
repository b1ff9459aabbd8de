"""Generate the synthetic ISS HDEV demo collection.

Reads the config (``paths.source``, ``demo.n_frames``, ``demo.seed``; ``MODE``, ``ISS_CONFIG`` and
``ISS_ROOT`` as for every step). Writes, under ``--out-dir`` (default ``paths.source``):
``collections/*.jpg`` (1280x720 frames named ``YYYYmmdd-HHMMSS.jpg``),
``history/history.txt`` (``lat;lon;id;location`` for ~70% of the frames) and
``labels.csv`` (the kind of each frame, for scoring clusterings only).

Re-running with the same arguments keeps the frames already written.

    python -m iss.exec.generate_demo [--out-dir DIR] [--n 2000] [--seed 0]
"""

import logging
from pathlib import Path
from typing import Optional

import typer

from iss.config import load_config
from iss.data.demo import generate_collection
from iss.exec.common import setup_logging, step_errors

logger = logging.getLogger("iss.exec.generate_demo")

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def main(
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Folder receiving collections/, history/ and "
                                                                   "labels.csv (default: paths.source)."),
    n: Optional[int] = typer.Option(None, "--n", min=1, help="Number of frames (default: demo.n_frames)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Seed; the same seed gives the same files "
                                                                   "(default: demo.seed)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="Config mode (default $MODE)."),
) -> None:
    """Generate N synthetic HDEV frames, their locations history and their labels."""
    setup_logging()
    with step_errors(logger, ValueError):
        cfg = load_config(mode=mode)
        out_dir = out_dir or cfg.path("source")
        n = n if n is not None else int(cfg.get("demo.n_frames"))
        seed = seed if seed is not None else int(cfg.get("demo.seed"))
        logger.info("generating %d demo frames (seed %d) into %s", n, seed, out_dir)
        summary = generate_collection(out_dir, n=n, seed=seed)
    logger.info("wrote %d frames (%d located) in %.1f s", summary.n_frames, summary.n_located,
                summary.seconds)
    typer.echo(f"frames:      {summary.n_frames} in {summary.collection_dir}")
    typer.echo(f"kinds:       {', '.join(f'{kind} {count}' for kind, count in summary.kinds.items())}")
    typer.echo(f"history:     {summary.n_located} lines in {summary.history_path}")
    typer.echo(f"labels:      {summary.labels_path}")
    typer.echo(f"seconds:     {summary.seconds:.1f}")


if __name__ == "__main__":
    app()
