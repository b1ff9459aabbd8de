"""Step `sampling`: a seeded train/test/valid split of the pictures, recorded in the database.

Reads: the ``pictures`` table and the ``sampling`` config section (seed, proportions,
stratify_by_hour, copy_to_dirs, link).
Writes: the ``splits`` table; with ``copy_to_dirs``, ``paths.splits_dir/{train,test,valid}/``.

    iss sampling                      # = make sampling = python -m iss.exec.sampling
    iss sampling --seed 7 --stratify-by-hour --copy-to-dirs
"""

from __future__ import annotations

import logging
from typing import Optional

import typer

from iss.exec.common import ModeOption, SetOption, setup_logging, step_app, step_config, step_engine, step_errors

log = logging.getLogger("iss.exec.sampling")
app = step_app(__doc__)


@app.command()
def sampling(
    seed: Optional[int] = typer.Option(None, "--seed", help="Split seed (default sampling.seed)."),
    stratify_by_hour: Optional[bool] = typer.Option(None, "--stratify-by-hour/--no-stratify-by-hour",
                                                    help="Keep each clock hour in one split."),
    copy_to_dirs: Optional[bool] = typer.Option(None, "--copy-to-dirs/--no-copy-to-dirs",
                                                help="Also mirror the split in paths.splits_dir."),
    mode: Optional[str] = ModeOption,
    settings: Optional[list[str]] = SetOption,
) -> None:
    """Split the pictures into train/test/valid and record the split."""
    setup_logging()
    from iss.data.sampling import SamplingError, sample_splits
    from iss.db.engine import DatabaseError

    overrides = {key: value for key, value in (("seed", seed), ("stratify_by_hour", stratify_by_hour),
                                               ("copy_to_dirs", copy_to_dirs)) if value is not None}
    with step_errors(log, SamplingError, DatabaseError):
        cfg = step_config(mode, settings, {"sampling": overrides} if overrides else None)
        log.info("sampling: start (seed %s)", cfg.get("sampling.seed"))
        with step_engine(cfg) as engine:
            counts = sample_splits(cfg, engine)
    total = sum(counts.values())
    typer.echo("split: " + ", ".join(f"{name} {n} ({n / total:.0%})" if total else f"{name} 0"
                                     for name, n in counts.items()))
    log.info("sampling: done, %d pictures", total)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
