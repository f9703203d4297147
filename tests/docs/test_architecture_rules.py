"""The import rules of docs/architecture.rst ("Which layer may use which"), checked against the code.

Read from the source (``ast``), so nothing is imported: an import inside a function counts as much as one
at the top (it runs too, only later); one under ``if TYPE_CHECKING:`` does not (it never runs).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_seedance"
NAME = "airflow_provider_seedance"
ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.rst"

PURE_CORE = ("models", "catalogue", "errors", "error_answers", "_redact", "_bounds", "polling")
THIRD_PARTY_CLIENTS = ("airflow", "requests", "aiohttp", "tenacity", "pendulum", "urllib3", "fsspec")


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports at run time."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                prefix = ".".join(base)
                names = [f"{prefix}.{node.module}"] if node.module else [f"{prefix}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
                # "from airflow_provider_seedance import x" may name a module x
                if node.module == NAME:
                    names += [f"{NAME}.{a.name}" for a in node.names]
            found.update(names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


#: Airflow's hook-level lineage collector: a leaf the hook and persist_video report to (its own layer here).
HOOK_LINEAGE = "lineage.hook_lineage"


def _layer(name: str) -> str:
    """``airflow_provider_seedance.hooks._http`` -> ``hooks``; ``...models`` -> ``models``."""
    if not name.startswith(NAME + "."):
        return ""
    rest = name[len(NAME) + 1:]
    return HOOK_LINEAGE if rest == HOOK_LINEAGE else rest.split(".")[0]


def _files(layer: str) -> list[Path]:
    target = PACKAGE / layer
    return sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]


def _layers_used(layer: str) -> dict[str, set[str]]:
    return {str(p.relative_to(PACKAGE)): {_layer(m) for m in _imports(p) if _layer(m)} - {layer} for p in _files(layer)}


@pytest.mark.parametrize("layer", PURE_CORE)
def test_the_pure_core_imports_no_airflow_and_no_http_client(layer: str) -> None:
    for path in _files(layer):
        bad = {m for m in _imports(path) if m.split(".")[0] in THIRD_PARTY_CLIENTS}
        assert not bad, f"{path.name} imports {sorted(bad)}"
        other = {_layer(m) for m in _imports(path) if _layer(m)} - set(PURE_CORE) - {layer}
        assert not other, f"{path.name} imports provider layers outside the pure core: {sorted(other)}"


@pytest.mark.parametrize(("layer", "forbidden"), [
    ("emulator", {"hooks", "triggers", "operators", "sensors", "links", "lineage", "persist", "budget"}),
    ("hooks", {"triggers", "operators", "sensors", "lineage", "persist", "budget"}),
    ("triggers", {"operators", "sensors", "links", "lineage", "persist", "budget"}),
    ("persist", {"hooks", "triggers", "operators", "sensors"}),
])
def test_layers_use_only_what_the_architecture_page_allows(layer: str, forbidden: set[str]) -> None:
    for path, used in _layers_used(layer).items():
        assert not used & forbidden, f"{path} imports {sorted(used & forbidden)}"


def test_nothing_imports_an_operator_or_a_sensor_at_run_time() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        layer = str(path.relative_to(PACKAGE)).split("/")[0]
        if layer in ("operators", "sensors"):
            continue
        used = {_layer(m) for m in _imports(path)}
        assert not used & {"operators", "sensors"}, f"{path.relative_to(PACKAGE)} imports an operator or sensor"


def test_hook_lineage_is_a_leaf() -> None:
    used = {_layer(m) for m in _imports(PACKAGE / "lineage" / "hook_lineage.py")} - {""}
    assert used <= {"lineage", "_redact"}, sorted(used)


def test_triggers_use_the_hook_the_wait_and_the_pure_core_only() -> None:
    for path, used in _layers_used("triggers").items():
        assert used <= {"hooks", "waiting", *PURE_CORE}, f"{path} imports {sorted(used)}"


def test_the_wait_uses_the_pure_core_only() -> None:
    # One decision for every mode: it must not depend on a mode (trigger, operator, sensor) or a client.
    used = {_layer(m) for m in _imports(PACKAGE / "waiting.py")} - {""}
    assert used <= set(PURE_CORE), sorted(used)
    text = (PACKAGE / "waiting.py").read_text(encoding="utf-8")
    assert not re.search(r"^\s*(from|import) (airflow|aiohttp|requests)\b", text, re.M)


def test_every_file_the_module_list_names_exists() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    assert "\nWhich layer may use which\n" in text, "the module list must end at the layers heading"
    block = text.split(".. code-block:: text", 1)[1].split("\nWhich layer may use which\n", 1)[0]
    current: list[str] = []
    named = []
    for line in block.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("airflow_provider_seedance/",)):
            continue
        indent = len(line) - len(line.lstrip())
        first = stripped.split()[0]
        if not (first.endswith((".py", "/")) and indent in (5, 7)):
            continue  # a continuation line of a description
        if indent == 5:
            current = [first.rstrip("/")] if first.endswith("/") else []
            if first.endswith(".py"):
                named.append(first)
        else:
            named.append("/".join([*current, first]))
    assert len(named) > 20
    missing = [n for n in named if not (PACKAGE / n).exists()]
    assert not missing, f"docs/architecture.rst names files the package lacks: {missing}"
    listed = {str(p.relative_to(PACKAGE)) for p in PACKAGE.glob("*/*.py") if not p.name.startswith("__")}
    listed |= {p.name for p in PACKAGE.glob("*.py")}
    for layer in ("hooks", "triggers", "operators"):
        absent = sorted(p for p in listed if p.startswith(layer + "/") and p not in named)
        assert not absent, f"docs/architecture.rst does not list {absent}"
