"""What every ``iss.exec.<step>`` CLI shares: logging, the error-to-exit-code rule, plain help text and
``--set KEY=VALUE`` config overrides.

Kept light on purpose: ``iss`` imports every step module to list its commands, so a step module
imports its library code (TensorFlow, UMAP, bokeh...) inside its command function, never at the top.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Optional

import typer

from iss.config import Config, ConfigError, load_config

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Log ``level`` and above to stderr, one line per record with time, level and logger name."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


def fail(message: str, code: int = 1) -> None:
    """Print ``error: <message>`` in red on stderr and exit with ``code`` (the commands' one clear line).

    Raises
    ------
    typer.Exit
    """
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)


def search_errors() -> tuple[type[Exception], ...]:
    """The errors the search and explorer commands turn into one clear line (bad config, database,
    cache, index, model); imported on call, so the commands stay light."""
    from iss.compute import ComputeError
    from iss.data.cache import CacheError
    from iss.db.engine import DatabaseError
    from iss.models.store import EncodeError
    from iss.search.approximate import ApproximateIndexError
    from iss.search.index import SearchIndexError

    # ComputeError: the index's graph built on a Dask scheduler that does not answer (iss index --scheduler)
    return (ConfigError, DatabaseError, CacheError, SearchIndexError, EncodeError, ComputeError,
            ApproximateIndexError)


@contextmanager
def step_errors(log: logging.Logger, *errors: type[BaseException]) -> Iterator[None]:
    """Turn the step's expected errors into one logged line and exit code 1.

    Parameters
    ----------
    log : logging.Logger
        The step's logger; the error message is logged on it at ERROR level.
    *errors : type of BaseException
        The errors the step's library functions raise for bad input (each has a message naming
        the thing, what was expected and what to do). ``ConfigError`` and ``DatabaseError`` are
        always included.

    Raises
    ------
    typer.Exit
        With code 1, when one of ``errors`` is raised in the block; anything else (a bug) keeps
        its traceback.
    """
    from iss.db.engine import DatabaseError

    try:
        yield
    except (ConfigError, DatabaseError, *errors) as exc:
        log.error("%s", exc)
        # why `from None`: the message says it all; a chained traceback would bury it.
        raise typer.Exit(code=1) from None


@contextmanager
def step_engine(cfg: Config) -> Iterator:
    """The engine of the configured database for one step, disposed when the step ends (also on error).

    Raises
    ------
    DatabaseError
        When the database cannot be reached, or goes away while the step runs (server stopped,
        connection lost, database or table dropped, file locked): one sentence naming the database,
        what happened and what to do, instead of the driver's traceback.
    """
    from sqlalchemy.exc import DBAPIError

    from iss.db.engine import get_engine, lost_database_error

    engine = get_engine(cfg.database_url)
    try:
        yield engine
    except DBAPIError as exc:
        if _is_bug(exc):
            raise
        raise lost_database_error(cfg.database_url, exc) from exc
    finally:
        engine.dispose()


def _is_bug(exc) -> bool:
    """A constraint violation or a malformed statement is a bug to report with its traceback, not a lost database."""
    from sqlalchemy.exc import DataError, IntegrityError

    return isinstance(exc, (IntegrityError, DataError))


# reStructuredText markup in docstrings -> plain text for --help: ``x`` and :role:`x` and `x` -> x
_RST_PATTERN = re.compile(r":[a-z]+:`~?([^`]+)`|``([^`]+)``|`([^`]+)`")


def plain_help(text: str | None, first_paragraph: bool = True) -> str:
    """A docstring as plain ``--help`` text: its first paragraph (or all of it), without RST markup.

    >>> plain_help("Read ``paths.cache`` with :func:`iss.data.cache.ImageCache`.\\n\\nMore.")
    'Read paths.cache with iss.data.cache.ImageCache.'
    """
    text = (text or "").strip()
    if first_paragraph:
        text = text.split("\n\n")[0]
    return _RST_PATTERN.sub(lambda m: next(g for g in m.groups() if g is not None), text)


def step_app(doc: str | None) -> typer.Typer:
    """The Typer app of one ``python -m iss.exec.<step>`` module, its help the docstring's first paragraph."""
    return typer.Typer(add_completion=False, help=plain_help(doc))


def parse_set_options(values: Sequence[str] | None) -> dict:
    """``["clustering.n2d.n_clusters=8", "demo.n_frames=300"]`` -> a nested overrides mapping.

    Values are read as YAML, so ``8`` is an int, ``auto`` a string, ``[2, 12]`` a list and
    ``null`` None.

    Raises
    ------
    ConfigError
        For an item without ``=`` or with an empty key, naming it.
    """
    import yaml

    overrides: dict = {}
    for item in values or ():
        key, sep, raw = item.partition("=")
        parts = [part.strip() for part in key.split(".")]
        if not sep or not all(parts):
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with a dotted key, e.g. "
                              f"--set clustering.n2d.n_clusters=8")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = overrides
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is set to a value and used as a section")
        node[parts[-1]] = value
    return overrides


def step_config(mode: str | None, settings: Sequence[str] | None = None, overrides: dict | None = None) -> Config:
    """The config of ``mode`` with the step's own option ``overrides`` then ``--set`` items deep-merged over it."""
    cfg = load_config(mode=mode, overrides=overrides or None)
    extra = parse_set_options(settings)
    return cfg.with_overrides(extra) if extra else cfg


# Options every step shares (Typer reads these defaults; the same object may serve many commands).
ModeOption = typer.Option(None, "--mode", help="Config mode: config/config_MODE.yaml (default $MODE, else demo).")
ModelTypeOption = typer.Option(None, "--model-type", help="Model type (default training.model_type).")
ModelNameOption = typer.Option(None, "--model-name", help="Model name (default training.model_name).")
SchedulerOption: Optional[str] = typer.Option(
    None, "--scheduler", metavar="auto|local|synchronous|tcp://HOST:PORT",
    help="Where the partitioned work runs (default compute.scheduler): auto, local (a LocalCluster sized to "
         "this machine), synchronous (in this process) or a Dask scheduler address.")


def scheduler_override(scheduler: Optional[str]) -> dict:
    """The config override of ``--scheduler`` (``{}`` when not given), checked like the config key."""
    return {"compute": {"scheduler": scheduler}} if scheduler else {}


SetOption: Optional[list[str]] = typer.Option(
    None, "--set", metavar="KEY=VALUE",
    help="Override any config key, e.g. --set clustering.n2d.n_clusters=8 (repeatable; values read as YAML).")
