"""The house rules that a reader sees first: no import cycle, no module over 600 lines, CLI modules that
only parse (at most 250 lines), models and ops free of training, inference and CLI imports."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "sana_wm"


def _modules() -> dict[str, Path]:
    modules = {}
    for file in PACKAGE.rglob("*.py"):
        parts = file.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = file
    return modules


def _imports(name: str, file: Path, modules: dict[str, Path]) -> set[str]:
    """Every sana_wm module ``name`` imports, at any depth of its code (lazy imports count too)."""
    package = name if file.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def test_no_import_cycle() -> None:
    modules = _modules()
    graph = {name: _imports(name, file, modules) for name, file in modules.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for other in sorted(graph[name]):
            if state.get(other) == 1:
                cycle = path[path.index(other) :] + [other]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if other not in state:
                visit(other, [*path, other])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_module_sizes() -> None:
    sizes = {
        f.relative_to(PACKAGE.parent): len(f.read_text(encoding="utf-8").splitlines())
        for f in _modules().values()
    }
    assert {str(f): n for f, n in sizes.items() if n > 600} == {}
    assert {str(f): n for f, n in sizes.items() if f.parts[1] == "cli" and n > 250} == {}


def test_single_device_layers_import_no_upper_layer() -> None:
    modules = _modules()
    upper = ("sana_wm.train", "sana_wm.inference", "sana_wm.cli", "sana_wm.eval", "sana_wm.bench")
    for layer in ("sana_wm.models", "sana_wm.ops", "sana_wm.samplers", "sana_wm.camera"):
        for name, file in modules.items():
            if name == layer or name.startswith(layer + "."):
                bad = [t for t in _imports(name, file, modules) if t.startswith(upper)]
                assert not bad, f"{name} imports {bad}"
                text = file.read_text(encoding="utf-8")
                assert "torch.distributed" not in text or layer != "sana_wm.models", name
