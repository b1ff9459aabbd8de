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
