"""Running pipeline steps as a user does, in their own process, against a config rooted in a test folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text

from iss.config import PROJ_ROOT


@dataclass
class StepEnv:
    """A config file and the environment that makes every step use it (``ISS_ROOT``, ``ISS_CONFIG``)."""

    root: Path
    config: Path
    database_url: str

    @property
    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("MODE",)}
        env.update(ISS_ROOT=str(self.root), ISS_CONFIG=str(self.config), TF_CPP_MIN_LOG_LEVEL="2",
                   PYTHONUNBUFFERED="1")
        return env

    def start(self, step: str, *args: str, log: Path | None = None) -> subprocess.Popen:
        """``python -m iss.exec.<step> args`` in the background; stdout and stderr to ``log`` (default a file per step)."""
        log = log or self.root / f"{step}.log"
        handle = open(log, "w")
        return subprocess.Popen([sys.executable, "-m", f"iss.exec.{step}", *args], cwd=PROJ_ROOT, env=self.environ,
                                stdout=handle, stderr=subprocess.STDOUT)

    def run(self, step: str, *args: str, timeout: float = 600) -> tuple[int, str]:
        """Run a step to the end: ``(exit code, its output)``."""
        log = self.root / f"{step}.log"
        process = self.start(step, *args, log=log)
        code = process.wait(timeout=timeout)
        return code, log.read_text()


def step_env(root: Path, database_url: str, **sections) -> StepEnv:
    """The demo config with its database set to ``database_url`` and ``sections`` merged in, written under ``root``."""
    import yaml

    data = yaml.safe_load((PROJ_ROOT / "config" / "config_demo.yaml").read_text()) or {}  # an overlay of the defaults
    data.setdefault("database", {})["url"] = database_url
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    root.mkdir(parents=True, exist_ok=True)
    config = root / "config_test.yaml"
    config.write_text(yaml.safe_dump(data))
    return StepEnv(root, config, database_url)


def new_mysql_database(server_url: str) -> str:
    """A fresh, uniquely named database on the MySQL/MariaDB server; its URL."""
    name = f"iss_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, future=True)
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    admin.dispose()
    return f"{server_url}/{name}"


def drop_mysql_database(url: str) -> None:
    server, name = url.rsplit("/", 1)
    if not re.fullmatch(r"iss_test_[0-9a-f]{10}", name):  # only the databases these helpers create
        raise ValueError(f"refusing to drop {name!r}")
    admin = create_engine(server, future=True)
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()
