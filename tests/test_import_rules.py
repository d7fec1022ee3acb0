"""The import rules of docs/design.md, checked on the source: every `import` and
`from ... import` of a module, at any depth (lazy imports too; imports under
`if TYPE_CHECKING:` are annotations, not imports, and are left out).

The layers are computed from the imports: each module belongs to a room of
docs/design.md's "Rooms and layers" table (the longest module prefix it starts with),
and a room's layer is one more than the highest layer of the rooms it imports. The
test fails when a module belongs to no room, when modules or rooms import in a circle,
when the computed layers differ from the ones the table draws, or when there are more
than seven."""

from __future__ import annotations

import ast
import functools
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import REPO

PACKAGE = REPO / "src" / "vaelab"
DESIGN = REPO / "docs" / "design.md"
ROOMS_START = "<!-- rooms: tests/test_import_rules.py -->"
ROOMS_END = "<!-- end of rooms -->"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, package: str | None = None) -> set[str]:
    """The modules `path` imports, absolute (relative imports resolved against
    `package`, by default the package `path` is in). `from a import b` gives `a.b`:
    the module `b` when it is one, else a name defined in `a` (`import_graph` reads it
    as `a`)."""
    names: set[str] = set()
    if package is None:
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    annotations_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    for node in ast.walk(tree):
        if id(node) in annotations_only:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            names.update(f"{module}.{alias.name}" for alias in node.names)
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
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from vaelab.train import train\n"
        "def f():\n    from vaelab.data import shapes\n    from . import mlp\n"
    )
    assert imported(source, "vaelab.models.backbones") == {
        "typing.TYPE_CHECKING",
        "vaelab.data.shapes",
        "vaelab.models.backbones.mlp",
    }


def test_the_model_knows_no_dataset() -> None:
    """The model reads labels through the label API alone, which names no dataset."""
    offenders = {
        module_name(p): sorted(
            n
            for n in vaelab_imports(p)
            if within(n, ("vaelab.data",)) and not within(n, ("vaelab.data.labels",))
        )
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


# ------------------------------------------------------------------ rooms and layers


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def import_graph() -> dict[str, set[str]]:
    """Module -> the vaelab modules it imports (names that are not modules, such as
    `vaelab.models.VAE`, stand for the module that defines them)."""
    found = all_modules()

    def owner(name: str) -> str | None:
        while name and name not in found:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        targets = {owner(n) for n in vaelab_imports(path)}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


@dataclass(frozen=True)
class Room:
    name: str
    layer: int
    prefixes: tuple[str, ...]


def drawn_rooms(design: str | None = None) -> list[Room]:
    """The rows of docs/design.md's rooms table: `| layer | room | modules | ... |`."""
    text = design if design is not None else DESIGN.read_text()
    table = text.split(ROOMS_START, 1)[1].split(ROOMS_END, 1)[0]
    rooms = []
    for line in table.strip().splitlines()[2:]:
        layer, room, modules = (cell.strip() for cell in line.strip("|").split("|")[:3])
        rooms.append(Room(room, int(layer), tuple(re.findall(r"`([\w.]+)`", modules))))
    return rooms


def room_of(module: str, rooms: list[Room]) -> Room | None:
    """The room whose longest prefix `module` starts with."""
    matches = [
        (len(prefix), room)
        for room in rooms
        for prefix in room.prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(matches, key=lambda m: m[0])[1] if matches else None


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of `graph` (empty when there is none)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def computed_layers(room_graph: dict[str, set[str]]) -> dict[str, int]:
    @functools.cache
    def layer(room: str) -> int:
        return 1 + max((layer(r) for r in room_graph[room]), default=0)

    return {room: layer(room) for room in room_graph}


def rooms_graph(graph: dict[str, set[str]], rooms: list[Room]) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {room.name: set() for room in rooms}
    for module, targets in graph.items():
        home = room_of(module, rooms)
        assert home is not None, f"{module} is in no room of docs/design.md"
        for target in targets:
            other = room_of(target, rooms)
            assert other is not None, f"{target} is in no room of docs/design.md"
            if other != home:
                result[home.name].add(other.name)
    return result


def test_the_layer_checker_computes_layers_and_finds_circles() -> None:
    rooms = [Room("low", 1, ("a",)), Room("mid", 2, ("b",)), Room("top", 3, ("c",))]
    graph = {"a": set(), "a.x": {"a"}, "b": {"a.x"}, "c": {"b", "a"}}
    assert computed_layers(rooms_graph(graph, rooms)) == {"low": 1, "mid": 2, "top": 3}
    assert cycle(graph) == []
    assert cycle({**graph, "a": {"c"}}) == ["a", "c", "a"]
    assert cycle({**graph, "a": {"b"}}) == ["a", "b", "a.x", "a"]
    deeper = Room("deeper", 2, ("a.x",))
    assert room_of("a.x.y", [*rooms, deeper]) == deeper
    assert room_of("z", rooms) is None
    rows = "| layer | room | modules |\n|---|---|---|\n| 2 | mid | `b`, `b.c` |"
    table = f"prose\n{ROOMS_START}\n{rows}\n{ROOMS_END}\nmore"
    assert drawn_rooms(table) == [Room("mid", 2, ("b", "b.c"))]


def test_no_module_imports_in_a_circle() -> None:
    assert cycle(import_graph()) == []


def test_every_module_is_in_a_room_and_the_layers_are_the_drawn_ones() -> None:
    rooms = drawn_rooms()
    graph = rooms_graph(import_graph(), rooms)
    assert cycle({room: set(targets) for room, targets in graph.items()}) == []
    assert computed_layers(graph) == {room.name: room.layer for room in rooms}
    assert max(room.layer for room in rooms) <= 7


def test_the_import_paths_users_type_keep_working() -> None:
    code = (
        "from vaelab.models import VAE; from vaelab.compare import compare, main;"
        "print(VAE.__name__, compare.__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.split()
    assert out == ["VAE", "compare"]
