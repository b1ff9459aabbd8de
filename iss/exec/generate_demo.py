"""Generate the synthetic ISS HDEV demo collection.

Reads nothing. Writes, under ``--out-dir`` (default ``data/external/demo``):
``collections/*.jpg`` (1280x720 frames named ``YYYYmmdd-HHMMSS.jpg``),
``history/history.txt`` (``lat;lon;id;location`` for ~70% of the frames) and
``labels.csv`` (the kind of each frame, for scoring clusterings only).

Re-running with the same arguments keeps the frames already written.

    python -m iss.exec.generate_demo --out-dir data/external/demo --n 2000 --seed 0
"""

import logging
from pathlib import Path

import typer

from iss.data.demo import generate_collection
from iss.exec.common import setup_logging

logger = logging.getLogger(__name__)

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    out_dir: Path = typer.Option(Path("data/external/demo"), "--out-dir",
                                 help="Folder receiving collections/, history/ and labels.csv."),
    n: int = typer.Option(2000, "--n", help="Number of frames."),
    seed: int = typer.Option(0, "--seed", help="Seed; the same seed gives the same files."),
) -> None:
    """Generate N synthetic HDEV frames, their locations history and their labels."""
    setup_logging()
    logger.info("generating %d demo frames (seed %d) into %s", n, seed, out_dir)
    try:
        summary = generate_collection(out_dir, n=n, seed=seed)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from error
    logger.info("wrote %d frames (%d located) in %.1f s", summary.n_frames, summary.n_located,
                summary.seconds)
    typer.echo(f"frames:      {summary.n_frames} in {summary.collection_dir}")
    typer.echo(f"kinds:       {', '.join(f'{kind} {count}' for kind, count in summary.kinds.items())}")
    typer.echo(f"history:     {summary.n_located} lines in {summary.history_path}")
    typer.echo(f"labels:      {summary.labels_path}")
    typer.echo(f"seconds:     {summary.seconds:.1f}")


if __name__ == "__main__":
    app()
