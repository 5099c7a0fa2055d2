"""The shape of the code holds: imports run one way, bottom up, and no module grows past 500
lines (docs/design.md has the map).

    common | ebpf | trace | daemon, service, signer, configurator, report | install, demo

A part imports only from parts to its left (and itself); the programs never import each other:
what two of them share lives in ``common``. The check reads every import statement, those
inside functions and ``TYPE_CHECKING`` blocks included.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "datacrumbs"
LAYERS = [
    {"common"},
    {"ebpf"},
    {"trace"},
    {"daemon", "service", "signer", "configurator", "report"},
    {"install", "demo"},
]
MAX_LINES = 500


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "datacrumbs" else None


def _layer(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def test_every_part_is_in_a_layer() -> None:
    parts = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert parts == set().union(*LAYERS)


def test_imports_run_one_way() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if len(relative.parts) < 2:
            continue
        source = relative.parts[0]
        for line, module in _imports(path):
            target = _part(module)
            if target is None or target == source:
                continue
            if _layer(target) >= _layer(source):
                wrong.append(f"{relative}:{line} imports {module}")
    assert wrong == []


def test_no_module_is_over_500_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
