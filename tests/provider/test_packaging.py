"""Building the package prints no warning caused by its own metadata, and the license is an SPDX expression.

A real build with pip (isolated, as ``make install`` does it: setuptools from the build requirements),
into a temporary directory; the output is searched for the warnings setuptools prints about a
project's configuration (deprecated license classifiers, a package left out of ``packages``...).
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]  # a wheel build: `make test-integration`

REPO = Path(__file__).resolve().parents[2]
# setuptools' warnings about the project (SetuptoolsDeprecationWarning, BuildBackendWarning...). pip's own
# lines ("WARNING: Location ... is ignored") are about the machine's index settings, not the project.
PROJECT_WARNING = re.compile(r"\b\w*(Deprecation)?Warning: (?!Editable installation)")


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """``pip wheel --no-deps`` of the repository: its output and the wheel."""
    out_dir = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out_dir), str(REPO)],
                          capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    [wheel] = out_dir.glob("airflow_provider_seedance-*.whl")
    return output, wheel


def test_the_build_prints_no_warning_about_the_project(build: tuple[str, Path]) -> None:
    output, _ = build
    warnings = [line.strip() for line in output.splitlines() if PROJECT_WARNING.search(line)]
    assert warnings == [], "\n".join(warnings)
    assert "License classifiers are deprecated" not in output


def test_the_license_is_an_spdx_expression(build: tuple[str, Path]) -> None:
    _, wheel = build
    with zipfile.ZipFile(wheel) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(name).decode()
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert not [line for line in metadata.splitlines() if line.startswith("Classifier: License ::")]
    assert "Metadata-Version: 2.4" in metadata  # PEP 639 metadata
