"""The files a newcomer relies on: Makefile help, .env defaults, docker-compose, README commands."""

import subprocess

import yaml

from iss.config import PROJ_ROOT


def test_bare_make_lists_every_pipeline_target():
    out = subprocess.run(["make", "-s", "help"], cwd=PROJ_ROOT, capture_output=True, text=True, check=True).stdout
    for target in ("demo", "test", "bench", "sync_collections", "populate_db", "sampling", "training", "encode",
                   "exec_clustering", "facets", "posters"):
        assert f" {target} " in out.replace("\x1b[36m", " ").replace("\x1b[0m", " "), target


def test_env_file_holds_no_secret():
    text = (PROJ_ROOT / ".env").read_text()
    assert "MODE=demo" in text
    assert "PASSWORD=" not in text.replace("# Non-secret", "")


def test_docker_compose_services_bound_to_localhost_and_no_password_in_file():
    compose = yaml.safe_load((PROJ_ROOT / "docker-compose.yaml").read_text())
    assert {"jupyter", "mysql", "adminer"} <= set(compose["services"])
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert compose["services"]["mysql"]["environment"]["MYSQL_ROOT_PASSWORD"].startswith("${MYSQL_PASSWORD")


def test_jupyter_requires_a_token_from_the_environment():
    """Issue 15, item 12: no empty token; the server refuses to start without JUPYTER_TOKEN."""
    jupyter = yaml.safe_load((PROJ_ROOT / "docker-compose.yaml").read_text())["services"]["jupyter"]
    assert jupyter["environment"]["JUPYTER_TOKEN"].startswith("${JUPYTER_TOKEN:?")  # compose stops if unset
    command = jupyter["command"]
    assert "token=''" not in command and 'token=""' not in command and "token=" not in command.replace(
        "JUPYTER_TOKEN", "")
    assert "NotebookApp.token" not in command and "password=''" not in command


def test_readme_starts_with_the_two_commands():
    readme = (PROJ_ROOT / "README.md").read_text()
    head = readme[:1500]
    assert "make demo" in head and "make test" in head
    ci = (PROJ_ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_readme_extension_examples_are_the_tested_files():
    """Issue 16: the developer guide's code is the code its tests register and run (no drift)."""
    readme = (PROJ_ROOT / "README.md").read_text()
    guide = readme[readme.index("## Developer guide: extending iss"):readme.index("## Layout")]
    blocks = [block.split("```", 1)[0] for block in guide.split("```python\n")[1:]]
    examples = {"FolderCopySource": "tests/data/folder_copy_source.py", "NewestRule": "tests/posters/newest_rule.py",
                "BirchStep": "tests/clustering/birch_step.py"}
    for name, path in examples.items():
        code = next(block for block in blocks if f"class {name}(" in block)
        lines = {line.strip() for line in (PROJ_ROOT / path).read_text().splitlines()}
        assert [line for line in code.splitlines() if line.strip() and line.strip() not in lines] == [], path
        assert any(f':{name}",' in block for block in blocks), f"no registry line for {name}"


# --- packaging (issue 16, item 7) ----------------------------------------------------------------------
def setup_kwargs() -> dict:
    """What setup.py passes to setuptools.setup (read without building anything)."""
    import runpy
    from unittest import mock

    with mock.patch("setuptools.setup") as setup:
        runpy.run_path(str(PROJ_ROOT / "setup.py"))
    return setup.call_args.kwargs


def distribution(requirement: str) -> str:
    """``scikit-image>=0.24,<0.27`` -> ``scikit-image`` (normalised as pip compares names)."""
    import re

    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def imported_distributions(files) -> dict[str, set[str]]:
    """Distribution -> the files that import it, for every third-party top-level import (lazy ones too)."""
    import ast
    import sys
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    found: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("iss", "tests", "benchmarks"):
                    continue
                for dist in owners.get(top, [top]):
                    found.setdefault(dist.lower().replace("_", "-"), set()).add(str(path.relative_to(PROJ_ROOT)))
    return found


def test_extras_are_declared_from_requirements_txt():
    kwargs = setup_kwargs()
    assert {"test", "bench", "heic", "dask"} <= set(kwargs["extras_require"])
    listed = [line.split("#")[0].strip() for line in (PROJ_ROOT / "requirements.txt").read_text().splitlines()]
    declared = kwargs["install_requires"] + [r for group in kwargs["extras_require"].values() for r in group]
    assert sorted(set(filter(None, listed))) == sorted(set(declared))  # make installs what setup.py declares


def test_every_direct_import_is_declared_where_it_is_used():
    kwargs = setup_kwargs()
    runtime = {distribution(r) for r in kwargs["install_requires"]}
    extras = {name: {distribution(r) for r in group} for name, group in kwargs["extras_require"].items()}
    peers = {distribution(line) for name in ("requirements-peers.txt", "requirements-fastdup.txt")
             for line in (PROJ_ROOT / name).read_text().splitlines() if line.split("#")[0].strip()}
    optional = extras["heic"] | extras["dask"]  # imported inside the functions that need them, with a pip hint
    allowed = [(list((PROJ_ROOT / "iss").rglob("*.py")), runtime | optional),
               (list((PROJ_ROOT / "tests").rglob("*.py")), runtime | optional | extras["test"]),
               (list((PROJ_ROOT / "benchmarks").rglob("*.py")), runtime | optional | extras["test"] | extras["bench"]
                | peers)]
    undeclared = {}
    for files, declared in allowed:
        for dist, users in imported_distributions(files).items():
            if dist not in declared:
                undeclared[dist] = sorted(users)[:3]
    assert undeclared == {}, "imported but not declared in requirements.txt (setup.py reads it)"
