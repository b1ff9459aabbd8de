"""Generate the synthetic ISS HDEV demo collection.

Reads the ``demo`` config section (``MODE``, ``ISS_CONFIG`` and ``ISS_ROOT`` as for every step). Writes, under ``paths.source`` (default ``data/external/demo``):
``collections/*.jpg`` (1280x720 frames named ``YYYYmmdd-HHMMSS.jpg``), ``history/history.txt``
(``lat;lon;id;location`` for ~70% of the frames), ``labels.csv`` (the kind of each frame, for
scoring clusterings only) and, with ``demo.odd_frames``, three odd frames listed in ``odd_frames.csv``.

Re-running with the same arguments keeps the frames already written.

    iss generate-demo --n 2000 --seed 0        # = make generate_demo = python -m iss.exec.generate_demo
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

from iss.exec.common import ModeOption, SetOption, setup_logging, step_app, step_config, step_errors

log = logging.getLogger("iss.exec.generate_demo")
app = step_app(__doc__)


@app.command()
def generate_demo(
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Folder receiving collections/, history/ and "
                                                                    "labels.csv (default paths.source)."),
    n: Optional[int] = typer.Option(None, "--n", min=1, help="Number of frames (default demo.n_frames)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0,
                                       help="Seed; the same seed gives the same files (default demo.seed)."),
    odd_frames: Optional[bool] = typer.Option(None, "--odd-frames/--no-odd-frames",
                                              help="Add a test pattern, a lens reflection and a half-black frame "
                                                   "(default demo.odd_frames)."),
    mode: Optional[str] = ModeOption,
    settings: Optional[list[str]] = SetOption,
) -> None:
    """Generate N synthetic HDEV frames, their locations history and their labels."""
    setup_logging()
    from iss.pipeline import generate_demo as run_generate

    overrides = {key: value for key, value in (("n_frames", n), ("seed", seed), ("odd_frames", odd_frames))
                 if value is not None}
    with step_errors(log, ValueError):
        cfg = step_config(mode, settings, {"demo": overrides} if overrides else None)
        if out_dir is not None:
            cfg = cfg.with_overrides({"paths": {"source": str(out_dir.resolve())}})
        log.info("generating %s demo frames (seed %s) into %s", cfg.get("demo.n_frames"), cfg.get("demo.seed"),
                 cfg.path("source"))
        summary = run_generate(cfg)
    typer.echo(f"frames:      {summary.n_frames} in {summary.collection_dir}")
    typer.echo(f"kinds:       {', '.join(f'{kind} {count}' for kind, count in summary.kinds.items())}")
    typer.echo(f"history:     {summary.n_located} lines in {summary.history_path}")
    typer.echo(f"labels:      {summary.labels_path}")
    typer.echo(f"seconds:     {summary.seconds:.1f}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
