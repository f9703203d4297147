"""The Sphinx docs build with warnings as errors and every internal reference resolved (``-W -n``).

Same flags as ``make docs``, into a temporary directory, in a subprocess (autodoc imports the package
and Airflow; a separate process keeps Sphinx's global state out of the test session).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
DAGS = REPO / "dags"


def _require_sphinx() -> None:
    pytest.importorskip("sphinx", reason="Sphinx is not installed (pip install -e '.[docs]')")
    pytest.importorskip("furo", reason="the furo theme is not installed (pip install -e '.[docs]')")


@pytest.mark.integration  # a full Sphinx build: `make test-integration`
def test_docs_build_without_warnings(tmp_path: Path) -> None:
    _require_sphinx()
    out = tmp_path / "html"
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path / "airflow-home"))
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html", str(DOCS), str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )
    warnings = [line for line in proc.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert proc.returncode == 0, "sphinx-build failed:\n" + ("\n".join(warnings) or proc.stderr[-4000:])
    assert not warnings, "\n".join(warnings)

    # The pages a DAG author needs are there, and the reference was really generated from the code.
    for page in ("index", "getting-started", "connection", "troubleshooting", "guides/reliability"):
        assert (out / f"{page}.html").is_file(), page
    operators = (out / "reference" / "operators.html").read_text(encoding="utf-8")
    assert 'id="airflow_provider_seedance.operators.seedance.SeedanceGenerateOperator"' in operators

    # Example DAGs are included from dags/ (literalinclude), not copied: their code is in the page.
    examples = (out / "examples.html").read_text(encoding="utf-8")
    for dag_file in sorted(DAGS.glob("example_*.py")):
        dag_ids = re.findall(r'dag_id="([^"]+)"', dag_file.read_text(encoding="utf-8"))
        for dag_id in dag_ids:
            assert dag_id in examples, f"{dag_file.name}: {dag_id} is not in examples.html"


def test_every_example_dag_is_included() -> None:
    # A new example DAG must appear on the examples page (cheap: text only, no build).
    examples = (DOCS / "examples.rst").read_text(encoding="utf-8")
    missing = [
        p.name for p in sorted(DAGS.glob("example_*.py"))
        if f".. literalinclude:: /../dags/{p.name}" not in examples
    ]
    assert not missing, f"example DAGs not literalincluded in docs/examples.rst: {missing}"
