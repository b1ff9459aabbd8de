"""Who may import whom: the step modules never import the ``iss`` command (it imports them), and the
package never imports the test helpers (browser, synthetic runs) or the browser driver."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "iss"


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("module", sorted(p.name for p in (PACKAGE / "exec").glob("*.py")))
def test_steps_do_not_import_the_command(module):
    imported = _imports(PACKAGE / "exec" / module)
    assert not {m for m in imported if m == "iss.cli" or m.startswith("iss.cli.")}, module


def test_the_package_does_not_import_test_helpers():
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        bad = {m for m in _imports(path) if m.split(".")[0] in ("tests", "selenium")}
        if bad:
            offenders[str(path.relative_to(PACKAGE))] = sorted(bad)
    assert offenders == {}
