"""What every ``iss.exec.<step>`` CLI shares: the logging set-up and the error-to-exit-code rule."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from iss.config import Config, ConfigError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: int = logging.INFO) -> None:
    """Log ``level`` and above to stderr, one line per record with time, level and logger name."""
    logging.basicConfig(level=level, format=LOG_FORMAT)


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
