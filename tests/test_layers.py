"""The house plan: arrows point down (roundtable → flows → notifications, calendars → models)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS = {"models", "calendars", "notifications", "flows", "roundtable"}
ALLOWED = {
    "models": set(),
    "calendars": {"models"},
    "notifications": {"models", "calendars"},
    "flows": {"models", "calendars", "notifications"},
    "roundtable": {"models", "calendars", "notifications", "flows"},
}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


def test_every_import_points_down():
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in (ROOT / package).rglob("*.py"):
            for target in imported_packages(path) - allowed - {package}:
                wrong.append(f"{path.relative_to(ROOT)} imports {target}")
    assert wrong == []
