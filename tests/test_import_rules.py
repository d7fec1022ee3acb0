"""The import rules of docs/design.md ("what may import what"), checked on the source:
every `import` and `from ... import` of a module, at any depth (lazy imports too)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

PACKAGE = REPO / "src" / "vaelab"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, package: str | None = None) -> set[str]:
    """The modules `path` imports, absolute (relative imports resolved against
    `package`, by default the package `path` is in)."""
    names: set[str] = set()
    if package is None:
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.add(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                names.add(node.module)
    return names


def modules(under: str) -> list[Path]:
    found = sorted((PACKAGE / under).rglob("*.py")) if under else []
    assert found, f"no modules under {under}"
    return found


def vaelab_imports(path: Path) -> set[str]:
    return {name for name in imported(path) if name == "vaelab" or name.startswith("vaelab.")}


def within(name: str, allowed: tuple[str, ...]) -> bool:
    return any(name == a or name.startswith(a + ".") for a in allowed)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from vaelab.data import shapes\n    from . import mlp\n")
    assert imported(source, "vaelab.models.backbones") == {
        "vaelab.data",
        "vaelab.models.backbones",
    }


def test_the_model_knows_no_dataset() -> None:
    offenders = {
        module_name(p): sorted(n for n in vaelab_imports(p) if within(n, ("vaelab.data",)))
        for p in modules("models")
    }
    assert {m: n for m, n in offenders.items() if n} == {}


def test_data_knows_no_model() -> None:
    allowed = ("vaelab.data", "vaelab.config.constraints", "vaelab.errors", "vaelab.runs.atomic")
    offenders = {
        module_name(p): sorted(n for n in vaelab_imports(p) if not within(n, allowed))
        for p in modules("data")
    }
    assert {m: n for m, n in offenders.items() if n} == {}


def test_backbones_know_nothing_of_vaes() -> None:
    allowed = ("vaelab.config.constraints", "vaelab.errors", "vaelab.models.backbones")
    offenders = {
        module_name(p): sorted(n for n in vaelab_imports(p) if not within(n, allowed))
        for p in modules("models/backbones")
    }
    assert {m: n for m, n in offenders.items() if n} == {}


@pytest.mark.parametrize("app", ["train", "eval", "generate"])
def test_no_app_module_imports_another(app: str) -> None:
    others = tuple(f"vaelab.{a}" for a in ("train", "eval", "generate") if a != app)
    assert sorted(n for n in vaelab_imports(PACKAGE / f"{app}.py") if within(n, others)) == []


def test_compare_reads_files_without_torch_numpy_or_models() -> None:
    """Importing the comparison and its readers loads no torch, numpy or Lightning."""
    code = (
        "import sys, vaelab.compare, vaelab.compare.figures, vaelab.runs.files;"
        "print(' '.join(m for m in ('torch', 'numpy', 'lightning', 'vaelab.models') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
