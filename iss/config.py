"""Configuration: the only place that reads ``.env``, ``MODE`` and the config files.

The base configuration is the schema's defaults (:mod:`iss.config_schema`, documented key by key
in ``config/config_template.yaml``). ``MODE`` (from the environment, else from ``.env``) picks the
overlay ``config/config_<MODE>.yaml``, which holds only what differs from them; ``ISS_CONFIG`` may
name a file to use instead, merged over the same defaults, so it may be complete or hold only what
differs. Values may contain ``${VAR}`` or ``${VAR:-default}``, filled from the environment.
Every relative path in the ``paths`` section, and a relative SQLite file in ``database.url``, is
resolved against the project root (``ISS_ROOT`` or the repository folder), so the whole pipeline
can be pointed at another folder by one variable.

Every loaded config is validated against the typed schema of :mod:`iss.config_schema` (one
Pydantic model per section): a value of the wrong type stops with one line per bad key naming
the file, the key, the value and what was expected; an unknown key is reported as a warning.
Every key of the schema is then present, so the code reads ``cfg.get(key)`` without a fallback.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from dotenv import load_dotenv

PROJ_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = PROJ_ROOT / "config"

log = logging.getLogger(__name__)
_VAR_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A config file, key or environment variable is missing or malformed."""


def _interpolate(value: Any, where: str, source: Path) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string of a nested structure."""
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{where}.{k}" if where else str(k), source) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(
            f"{source}: key '{where}' uses ${{{name}}} but the environment variable {name} is not set; "
            f"export it (or add it to .env for non-secret values)"
        )

    return _VAR_PATTERN.sub(replace, value)


def _deep_merge(base: dict, overrides: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass
class Config:
    """A loaded configuration.

    Parameters
    ----------
    data : dict
        The interpolated YAML content.
    source : Path
        The file it came from (named in error messages).
    root : Path
        Folder that relative paths are resolved against.
    mode : str
        The mode name (``demo``, ``dev``...).
    """

    data: dict
    source: Path
    root: Path = PROJ_ROOT
    mode: str = "demo"
    _cache: dict = field(default_factory=dict, repr=False)

    def get(self, key: str) -> Any:
        """Value at a dotted key (``"training.epochs"``).

        Every key of the schema has its default (:mod:`iss.config_schema`), so there is no fallback
        argument: a missing key is one the schema does not know (a typo in the code, or a key of a
        newer step), and raises.
        """
        node: Any = self.data
        walked = []
        for part in key.split("."):
            walked.append(part)
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(
                    f"{self.source}: missing key '{'.'.join(walked)}' (needed as '{key}'); it is not a key of "
                    f"the config schema (iss/config_schema.py, documented in config/config_template.yaml)"
                )
            node = node[part]
        return node

    def section(self, key: str) -> dict:
        """A whole mapping (a copy), e.g. ``cfg.section("clustering.n2d")``."""
        value = self.get(key)
        if not isinstance(value, dict):
            raise ConfigError(f"{self.source}: key '{key}' should be a mapping, got {type(value).__name__}")
        return copy.deepcopy(value)

    def path(self, name: str) -> Path:
        """An absolute path from the ``paths`` section, e.g. ``cfg.path("collections")``."""
        path = Path(str(self.get(f"paths.{name}"))).expanduser()
        return path if path.is_absolute() else self.root / path

    @property
    def database_url(self) -> str:
        """``database.url`` with a relative SQLite file made absolute under the root."""
        url = str(self.get("database.url"))
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
            return prefix + str(self.root / url[len(prefix):])
        return url

    def with_overrides(self, overrides: dict) -> "Config":
        """A new Config with ``overrides`` deep-merged over this one (validated like a loaded file).

        Raises
        ------
        ConfigError
            When an override has the wrong type (names the key, the value and what was expected).
        """
        return Config(_validated(_deep_merge(self.data, overrides), self.source), self.source, self.root, self.mode)


def _validated(data: dict, source: Path, warn: bool = False) -> dict:
    """``data`` checked and coerced by the typed schema; ConfigError listing every bad key."""
    from iss.config_schema import unknown_keys, validate_config

    try:
        checked = validate_config(data, str(source))
    except ValueError as exc:
        raise ConfigError(f"{exc}\n(see config/config_template.yaml for every key's type and meaning)") from None
    if warn:
        for key in unknown_keys(data):
            log.warning("%s: unknown key %s; it is ignored unless a step reads it", source, key)
    return checked


def shared_dir(*parts: str) -> Path:
    """``shared/<parts>`` in the nearest folder above the repository that has it (the repository may be
    a worktree nested deeper than its ``shared`` neighbour); ``<repository>/../shared/<parts>`` if none."""
    for parent in PROJ_ROOT.parents:
        candidate = parent.joinpath("shared", *parts)
        if candidate.exists():
            return candidate
    return PROJ_ROOT.parent.joinpath("shared", *parts)


def datasets_dir() -> Path:
    """The reference data sets (Fashion-MNIST, MNIST ``.npz``): ``$ISS_DATASETS``, else ``shared/datasets``
    beside the repository (:func:`shared_dir`)."""
    return Path(os.environ.get("ISS_DATASETS") or shared_dir("datasets"))


def real_frames_dir() -> Path:
    """The real ISS HDEV frames kept outside the repository: ``$ISS_REAL_FRAMES``, else
    ``shared/real/iss_frames`` (:func:`shared_dir`)."""
    return Path(os.environ.get("ISS_REAL_FRAMES") or shared_dir("real", "iss_frames"))


def load_config(mode: str | None = None, path: str | Path | None = None, root: str | Path | None = None,
                overrides: dict | None = None) -> Config:
    """Load the configuration for a mode: the schema's defaults with the mode's file deep-merged over them.

    Parameters
    ----------
    mode : str, optional
        Picks ``config/config_<mode>.yaml``. Default: ``$MODE`` (environment, then ``.env``), else ``demo``.
    path : str or Path, optional
        A config file to use instead of the mode's (default ``$ISS_CONFIG`` if set); like a mode's file it
        is merged over the defaults, so it may hold every key or only those that differ.
    root : str or Path, optional
        Folder for relative paths. Default ``$ISS_ROOT`` or the repository folder.
    overrides : dict, optional
        Values deep-merged over the file's (used by tests and by command-line options).

    Returns
    -------
    Config
    """
    load_dotenv(PROJ_ROOT / ".env", override=False)
    mode = mode or os.environ.get("MODE") or "demo"
    path = Path(path or os.environ.get("ISS_CONFIG") or CONFIG_DIR / f"config_{mode}.yaml")
    if not path.is_file():
        available = sorted(p.stem.removeprefix("config_") for p in CONFIG_DIR.glob("config_*.yaml"))
        raise ConfigError(
            f"config file {path} not found for MODE={mode!r}; available modes: {', '.join(available)} "
            f"(set MODE in .env or the environment, or ISS_CONFIG to a file)"
        )
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    data = _interpolate(raw, "", path)
    if overrides:
        data = _deep_merge(data, overrides)
    data = _validated(data, path, warn=True)
    root = Path(root or os.environ.get("ISS_ROOT") or PROJ_ROOT).resolve()
    return Config(data=data, source=path, root=root, mode=mode)
