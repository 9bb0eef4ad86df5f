"""No module in medviewer uses another module's private (underscore-prefixed) names.

An underscore tells the owner's editors that nothing else relies on the name, so they rename or reshape it
freely; a second module reaching in breaks silently when they do. Shared helpers get a public name instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
PACKAGE = REPO / "medviewer"


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def is_module(dotted: str) -> bool:
    path = REPO.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_from(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from ... import`` reads, relative imports resolved against ``module``."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, node.module] if node.module else base)


def dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        owner = dotted_name(node.value)
        return f"{owner}.{node.attr}" if owner else None
    return None


def private_uses(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, what) for each private name of another medviewer module that ``source`` imports or reads:
    ``from medviewer.x import _y``, ``import medviewer.x._y``, and ``x._y`` where ``x`` names a medviewer
    module. Names bound in any scope count, which is stricter than Python but never misses one."""
    tree = ast.parse(source)
    modules: dict[str, str] = {}  # local name -> the medviewer module it is bound to
    uses: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] != "medviewer":
                    continue
                if any(is_private(part) for part in parts) and alias.name != module:
                    uses.append((node.lineno, alias.name))
                modules[alias.asname or "medviewer"] = alias.name if alias.asname else "medviewer"
        elif isinstance(node, ast.ImportFrom):
            source_module = imported_from(node, module, is_package)
            if source_module.split(".")[0] != "medviewer" or source_module == module:
                continue
            for alias in node.names:
                target = f"{source_module}.{alias.name}"
                if is_private(alias.name) or any(is_private(part) for part in source_module.split(".")):
                    uses.append((node.lineno, target))
                elif is_module(target):
                    modules[alias.asname or alias.name] = target
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr):
            owner = dotted_name(node.value)
            if owner is None:
                continue
            head, _, rest = owner.partition(".")
            if head not in modules:
                continue
            target = ".".join(filter(None, [modules[head], rest]))
            if target != module and is_module(target):
                uses.append((node.lineno, f"{target}.{node.attr}"))
    return sorted(uses)


@pytest.mark.parametrize(
    "source",
    [
        "from medviewer.ai.inference import Cancelled, _Run",
        "from .inference import _Run",
        "from medviewer.ai import inference\nrun = inference._Run",
        "import medviewer.ai.inference as inference\nrun = inference._Run",
        "import medviewer.ai.inference\nrun = medviewer.ai.inference._Run",
        "def later():\n    from medviewer.ai import inference\n    return inference._Run",
    ],
)
def test_the_check_finds_each_way_of_reaching_a_private_name(source: str):
    assert [what for _, what in private_uses(source, "medviewer.ai.slide_run")] == ["medviewer.ai.inference._Run"]


@pytest.mark.parametrize(
    "source",
    [
        "from medviewer.ai.inference import _Run",  # a module's own names
        "from medviewer import __version__",  # dunders are public
        "from medviewer.ai import inference\nname = inference.__name__",
        "from medviewer.ai.inference import Cancelled\nerror = Cancelled()._message",  # an object, not a module
    ],
)
def test_the_check_leaves_public_and_own_names_alone(source: str):
    assert private_uses(source, "medviewer.ai.inference") == []


def test_no_module_uses_another_modules_private_names():
    found = [
        f"{path.relative_to(REPO)}:{line}: {what}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, what in private_uses(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")
    ]
    assert found == [], "private names used outside their module:\n" + "\n".join(found)
