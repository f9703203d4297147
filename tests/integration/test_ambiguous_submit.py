"""A submit whose answer cannot be read is never sent again, through real Airflow with retries=2.

``airflow dags test`` against a scripted server on 127.0.0.1: whatever made the answer unreadable (a
400-digit ``creditsCharged``, or ``execution_timeout`` firing while the answer is awaited: not a Seedance
error at all), the operator recorded an intent before the POST, fails without retry, and exactly one POST
reaches the server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hook"))
from scripted_server import Reply, Request, ScriptedServer, http_response
from scripted_server import scripted_server as scripted_server  # the fixture

if TYPE_CHECKING:
    from .conftest import AirflowCli

pytestmark = pytest.mark.airflow_cli

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
GENERATIONS = "/api/open/v1/video/generations"
HUGE = "9" * 400


def _answer(submit: Callable[[], bytes]) -> Callable[[Request], Reply]:
    def handler(request: Request) -> Reply:
        if request.method == "POST" and request.path == GENERATIONS:
            return Reply(submit())
        return Reply(http_response(404, json.dumps({"success": False, "error": {"message": "not here"}})))

    return handler


def _run(cli: AirflowCli, server: ScriptedServer, dag_id: str) -> tuple[str, list[Request]]:
    env = {**cli.env, "AIRFLOW_CONN_SEEDANCE_SCRIPTED": json.dumps(
        {"conn_type": "seedance", "host": server.base_url, "password": "sd2_test_key"})}
    run = subprocess.run([AIRFLOW, "dags", "test", dag_id], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=300, check=False)
    return run.stdout, [r for r in server.requests if r.method == "POST"]


def test_a_400_digit_charge_is_posted_once_across_three_tries(
    airflow_cli: AirflowCli, scripted_server: Callable[[Callable[[Request], Reply]], ScriptedServer]
) -> None:
    body = f'{{"success": true, "data": {{"requestId": "req_1", "status": "queued", "creditsCharged": {HUGE}}}}}'
    server = scripted_server(_answer(lambda: http_response(200, body)))
    out, posts = _run(airflow_cli, server, "seedance_it_ambiguous_charge")
    assert len(posts) == 1, out[-4000:]
    assert "SeedanceAmbiguousSubmitNoRetryError" in out


def test_a_submit_cut_off_by_execution_timeout_is_posted_once_across_three_tries(
    airflow_cli: AirflowCli, scripted_server: Callable[[Callable[[Request], Reply]], ScriptedServer]
) -> None:
    def late() -> bytes:
        time.sleep(8)  # longer than the task's execution_timeout (3 s): the task gives up while it waits
        return http_response(200, json.dumps({"success": True, "data": {"requestId": "req_1", "status": "queued"}}))

    server = scripted_server(_answer(late))
    out, posts = _run(airflow_cli, server, "seedance_it_ambiguous_timeout")
    assert len(posts) == 1, out[-4000:]
    assert "SeedanceAmbiguousSubmitNoRetryError" in out
