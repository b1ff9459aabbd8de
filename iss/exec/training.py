"""Step `training`: fit an autoencoder on the train split and save it.

Reads: the ``splits`` table, the ingest cache (``paths.cache``), config ``training.*`` and
``models.<model_type>``; with ``--load``, that model's checkpoint.
Writes: ``models/<model_type>/<model_name>/`` (``encoder.keras``, ``decoder.keras``,
``record.json``, ``checkpoint/``, ``training.csv``, TensorBoard ``logs/``) and the ``models`` row.

    iss training --model-type simple_conv          # = make training = python -m iss.exec.training
    iss training --model-type simple_conv --load demo --epochs 60   # resume to epoch 60
    iss training --model-type variational_conv --mixed-precision      # on a GPU
    iss training --model-type simple_conv --variant original --model-name original
    tensorboard --logdir models/simple_conv/demo/logs

Ctrl-C saves the model as it is; continue it later with ``--load NAME``.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

import typer

from iss.exec.common import ModeOption, SetOption, setup_logging, step_app, step_config, step_engine, step_errors

log = logging.getLogger("iss.exec.training")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter off (set before it loads)
app = step_app(__doc__)


@app.command()
def training(
    model_type: Optional[str] = typer.Option(None, "--model-type",
                                             help="simple | simple_conv | variational | variational_conv "
                                                  "(default training.model_type)."),
    model_name: Optional[str] = typer.Option(None, "--model-name",
                                             help="Output folder name (default: --load, else training.model_name)."),
    load: Optional[str] = typer.Option(None, "--load", help="Resume this saved model from its checkpoint."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Total epochs to reach (default training.epochs)."),
    variant: Optional[str] = typer.Option(None, "--variant",
                                          help="fast | original, for the conv models (default models.<type>.variant)."),
    mixed_precision: Optional[bool] = typer.Option(None, "--mixed-precision/--no-mixed-precision",
                                                   help="float16 compute on a GPU (default training.mixed_precision)."),
    mode: Optional[str] = ModeOption,
    settings: Optional[list[str]] = SetOption,
) -> None:
    """Train (or resume) an autoencoder."""
    setup_logging()
    from iss.data.cache import CacheError
    from iss.db.engine import DatabaseError
    from iss.models.autoencoders import ModelConfigError
    from iss.models.training import TrainingError, train_model

    with step_errors(log, TrainingError, ModelConfigError, CacheError, LookupError, DatabaseError):
        cfg = step_config(mode, settings)
        model_type = model_type or str(cfg.get("training.model_type"))
        overrides: dict = {}
        if mixed_precision is not None:
            overrides["training"] = {"mixed_precision": mixed_precision}
        if variant is not None:
            overrides["models"] = {model_type: {"variant": variant}}
        cfg = cfg.with_overrides(overrides) if overrides else cfg
        log.info("training: start (%s%s)", model_type, f", resuming {load}" if load else "")
        with step_engine(cfg) as engine:
            result = train_model(cfg, engine, model_type, model_name=model_name, load=load, epochs=epochs)
    typer.echo(f"model: {result.model_dir} ({result.fit.epochs_done} epochs"
               f"{', interrupted' if result.interrupted else ''}; val_loss {result.metrics.get('val_loss', float('nan')):.5g})")
    log.info("training: done")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
