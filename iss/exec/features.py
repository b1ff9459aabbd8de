"""Step `features`: the feature vectors clustering works on (autoencoder latents, pixels, or auto).

Reads: the ingest cache (``paths.cache``) and, for ``autoencoder`` / ``auto``, the encode step's
``<paths.latents>/<model_type>/<model_name>/latents.npz``; the ``features`` config section.
Writes: ``<paths.features>/pixels-<size><w>x<h>/`` or ``<paths.features>/auto/`` (``features.npz``,
``record.json``; for ``auto`` what was chosen, why, and the measured stabilities). The
``autoencoder`` kind writes nothing: its features are the latents.

    iss features                  # = make features = python -m iss.exec.features; features.kind (auto)
    iss features --kind pixels
"""

from __future__ import annotations

import logging
from typing import Optional

import typer

from iss.exec.common import ModeOption, SetOption, setup_logging, step_app, step_config, step_errors

log = logging.getLogger("iss.exec.features")
app = step_app(__doc__)


@app.command()
def features(
    kind: Optional[str] = typer.Option(None, "--kind", help="autoencoder | pixels | auto (default features.kind)"),
    model_type: Optional[str] = typer.Option(None, "--model-type", help="default: training.model_type"),
    model_name: Optional[str] = typer.Option(None, "--model-name", help="default: training.model_name"),
    mode: Optional[str] = ModeOption,
    settings: Optional[list[str]] = SetOption,
) -> None:
    """Compute the features of every cached picture."""
    setup_logging()
    from iss.data.cache import CacheError
    from iss.features import build_features

    with step_errors(log, FileNotFoundError, ValueError, CacheError):
        cfg = step_config(mode, settings)
        log.info("features: start (%s)", kind or cfg.get("features.kind"))
        result = build_features(cfg, kind, model_type, model_name)
    auto = result.record.get("auto")
    typer.echo(f"features: {len(result.ids)} pictures x {result.dim} ({result.kind}) in {result.path}")
    if auto:
        typer.echo(f"auto: {auto['reason']}")
    log.info("features: done")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
