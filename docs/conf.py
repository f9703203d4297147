"""Sphinx configuration of the airflow-provider-seedance documentation.

Build: ``make docs`` (or ``sphinx-build -W --keep-going -n -b html docs docs/_build/html``). Warnings are
errors and ``-n`` reports every unresolved reference. There is no intersphinx (the build must work
offline), so references to third-party types are listed in ``nitpick_ignore_regex`` below, by package.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))

# autodoc imports the package, which imports Airflow; never let a docs build write airflow.cfg or a
# database into the user's ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", os.path.join(tempfile.gettempdir(), "seedance-docs-airflow-home"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")

from airflow_provider_seedance import __version__  # noqa: E402

project = "airflow-provider-seedance"
author = "airflow-provider-seedance contributors"
copyright = "the airflow-provider-seedance contributors"
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"Seedance provider {release}"
html_static_path: list[str] = []

# Docstrings use ``:param x:`` fields; signatures keep their type hints, descriptions stay readable.
autodoc_typehints = "signature"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_class_signature = "mixed"
python_use_unqualified_type_names = True
nitpicky = True

# Third-party and standard-library names (no intersphinx offline): resolving them is not our job.
_EXTERNAL = (
    r"airflow(\..*)?",
    r"aiohttp(\..*)?",
    r"requests(\..*)?",
    r"urllib3(\..*)?",
    r"tenacity(\..*)?",
    r"pendulum(\..*)?",
    r"openlineage(\..*)?",
    r"OperatorLineage|Dataset|RunFacet",
    r"pytest(\..*)?",
    r"_pytest(\..*)?",
    r"asyncio(\..*)?",
    r"collections(\..*)?",
    r"concurrent(\..*)?",
    r"contextlib(\..*)?",
    r"datetime(\..*)?",
    r"enum(\..*)?",
    r"logging(\..*)?",
    r"os(\..*)?",
    r"pathlib(\..*)?",
    r"subprocess(\..*)?",
    r"threading(\..*)?",
    r"types(\..*)?",
    r"typing(\..*)?",
    r"abc(\..*)?",
    # Bare names autodoc prints for builtins, typing aliases and TYPE_CHECKING-only imports.
    r"Any|Callable|Iterator|AsyncIterator|Mapping|Sequence|Hashable|Iterable|AsyncGenerator|TypeVar|T",
    r"Context|TaskInstanceKey|TriggerEvent|BaseTrigger|BaseHook|BaseOperator|BaseSensorOperator",
    r"BaseOperatorLink|PokeReturnValue|ObjectStoragePath|AirflowFailException|AirflowException",
    r"timedelta|datetime|Path|Enum|ABC",
    r"Popen|ClientSession|Session|Response|PreparedRequest|AuthBase|Logger|Event",
    r"RetryCallState|Retrying|AsyncRetrying|wait_base|stop_base",
    r"int|float|str|bytes|bool|dict|list|tuple|set|frozenset|object|None|type",
    r"Exception|BaseException|ValueError|TypeError|KeyError|TimeoutError|OSError|RuntimeError",
    # Generic aliases that autodoc splits at the comma (``tuple[int, ...]`` -> ``tuple[int``).
    r"(tuple|list|dict|set|frozenset|type)\[.*",
)
nitpick_ignore_regex = [(r"py:.*", pattern) for pattern in _EXTERNAL]
# Docstrings point at internal modules (``hooks/_retry.py``...) that the reference does not publish.
nitpick_ignore_regex.append((r"py:mod", r"\.?_\w+"))
# Classes of those internal modules named in "Bases:" lines (e.g. the hook's and trigger's shared-logger mixin).
nitpick_ignore_regex.append((r"py:class", r"airflow_provider_seedance\.(\w+\.)*_\w+\.\w+"))


def _resolve_short_project_names(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a short name such as ``SeedanceHook`` used in a docstring to the one documented object.

    Docstrings name project classes briefly (``:class:`JobResult```, ``:raises SeedanceError:``) from
    modules where the class is imported, not defined. When exactly one documented project object has
    that last name, link to it; otherwise leave the reference unresolved so ``-n`` reports it.
    """
    if node.get("refdomain") != "py":
        return None
    target = str(node.get("reftarget", "")).lstrip(".~")
    if not target:
        return None
    last = target.rsplit(".", 1)[-1]
    domain = env.get_domain("py")
    matches = [
        (name, obj)
        for name, obj in domain.objects.items()
        if name.startswith("airflow_provider_seedance.") and name.rsplit(".", 1)[-1] == last
        and (target == last or name.endswith("." + target))
    ]
    if len(matches) != 1:
        return None
    from sphinx.util.nodes import make_refnode

    name, obj = matches[0]
    return make_refnode(app.builder, node["refdoc"], obj.docname, obj.node_id, contnode, name)


def setup(app: Any) -> dict[str, Any]:
    """Register the short-name resolver."""
    app.connect("missing-reference", _resolve_short_project_names)
    return {"parallel_read_safe": True}
