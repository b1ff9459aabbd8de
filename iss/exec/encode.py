"""Step `encode`: latents of every cached picture with a trained encoder.

Reads: ``models/<model_type>/<model_name>/encoder.keras`` and the ingest cache (``paths.cache``).
Writes: ``<paths.latents>/<model_type>/<model_name>/latents.npz`` (``ids``, ``latents`` float32
(n, d)) and the latents' count and path in the ``models`` row.

    iss encode --model-type simple_conv            # = make encode; only pictures not yet encoded
    iss encode --model-type simple_conv --all      # re-encode everything
    iss encode --scheduler local                   # as Dask tasks on a LocalCluster (README "Compute")
    iss encode --scheduler tcp://host:8786         # ... or on a Dask cluster
"""

from __future__ import annotations

import logging
import os
from typing import Optional

import typer

from iss.exec.common import (ModeOption, SchedulerOption, SetOption, scheduler_override, setup_logging, step_app,
                              step_config, step_engine, step_errors)

log = logging.getLogger("iss.exec.encode")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter off (set before it loads)
app = step_app(__doc__)


@app.command()
def encode(
    model_type: Optional[str] = typer.Option(None, "--model-type", help="Model type (default training.model_type)."),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="Model name (default training.model_name)."),
    all_pictures: bool = typer.Option(False, "--all", help="Re-encode every picture, not only new ones."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1,
                                             help="Pictures per encoder call (default: ~330k pixels a batch)."),
    scheduler: Optional[str] = SchedulerOption,
    mode: Optional[str] = ModeOption,
    settings: Optional[list[str]] = SetOption,
) -> None:
    """Encode the pictures of the ingest cache."""
    setup_logging()
    from iss.compute import ComputeError
    from iss.data.cache import CacheError
    from iss.db.engine import DatabaseError
    from iss.models.encode import EncodeError, encode_collection

    with step_errors(log, EncodeError, CacheError, DatabaseError, ComputeError):
        cfg = step_config(mode, settings, scheduler_override(scheduler))
        model_type = model_type or str(cfg.get("training.model_type"))
        log.info("encode: start (%s/%s%s)", model_type, model_name or cfg.get("training.model_name"),
                 ", all pictures" if all_pictures else "")
        with step_engine(cfg) as engine:
            path = encode_collection(cfg, engine, model_type, model_name, only_new=not all_pictures,
                                     batch_size=batch_size)
    typer.echo(f"latents: {path}")
    log.info("encode: done")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
