"""The provider registers with Airflow: proven through the `airflow providers` CLI, as a user would see it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_seedance import CONN_FIELDS, __version__, get_provider_info

pytestmark = pytest.mark.airflow_cli

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def _cli(*args: str) -> list[dict]:
    env = {**os.environ, "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR"}
    out = subprocess.run(
        [AIRFLOW, "providers", *args, "-o", "json"], env=env, capture_output=True, text=True, check=True, timeout=120
    )
    # The CLI may print warnings before the JSON document.
    return json.loads(out.stdout[out.stdout.index("[") :])


def test_providers_list_shows_the_package() -> None:
    rows = {r["package_name"]: r for r in _cli("list")}
    assert rows["airflow-provider-seedance"]["version"] == __version__


def test_providers_hooks_shows_the_seedance_connection_type() -> None:
    rows = {r["connection_type"]: r for r in _cli("hooks")}
    row = rows["seedance"]
    assert row["class"] == "airflow_provider_seedance.hooks.seedance.SeedanceHook"
    assert row["hook_name"] == "Seedance"
    assert row["conn_id_attribute_name"] == "seedance_conn_id"
    assert row["package_name"] == "airflow-provider-seedance"


def test_connection_form_fields_are_registered() -> None:
    rows = _cli("widgets")
    names = {r["connection_parameter_name"] for r in rows if r.get("package_name") == "airflow-provider-seedance"}
    assert names == {f"extra__seedance__{field}" for field in CONN_FIELDS}


def test_triggers_and_links_are_registered() -> None:
    triggers = json.dumps(_cli("triggers"))
    assert "airflow_provider_seedance.triggers.seedance" in triggers
    links = json.dumps(_cli("links"))
    assert "airflow_provider_seedance.links.seedance.SeedanceVideoLink" in links


def test_every_module_named_in_provider_info_imports() -> None:
    import importlib

    info = get_provider_info()
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for link in info["extra-links"]:
        module, _, name = link.rpartition(".")
        assert hasattr(importlib.import_module(module), name)
    hook_path = info["connection-types"][0]["hook-class-name"]
    module, _, name = hook_path.rpartition(".")
    assert hasattr(importlib.import_module(module), name)
