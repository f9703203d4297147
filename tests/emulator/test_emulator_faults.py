"""Each injected fault, seen by a plain HTTP client: deterministic, scoped, counted."""

from __future__ import annotations

import json
import urllib.request

import pytest
import requests
from emu_client import GENERATIONS, Api

from airflow_provider_seedance.emulator.testing import EmulatorHandle


def test_429_n_times_with_retry_after_then_normal(api: Api, emu: EmulatorHandle) -> None:
    rid = api.submit_ok()
    emu.admin.add_fault(kind="http", status=429, retry_after=2, endpoint="status", times=2)
    first, second, third = (api.get(rid) for _ in range(3))
    for resp in (first, second):
        assert resp.status_code == 429
        assert resp.headers["Retry-After"] == "2"
        error = {"code": "rate_limited", "message": "Injected fault: HTTP 429"}
        assert resp.json() == {"success": False, "error": error}
    assert third.status_code == 200
    [fault] = emu.admin.faults()
    assert fault["hits"] == 2
    assert emu.admin.stats()["faults_injected"] == 2
    assert [e.get("fault") for e in emu.admin.requests(endpoint="status")] == ["http", "http", None]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_on_submit_create_no_job_by_default(api: Api, emu: EmulatorHandle, status: int) -> None:
    emu.admin.add_fault(kind="http", status=status, endpoint="submit")
    resp = api.submit()
    assert resp.status_code == status
    assert resp.json()["error"]["code"] == "server_error"
    assert emu.admin.jobs() == []
    assert api.submit().status_code == 200


def test_server_error_after_processing_leaves_a_charged_job(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.add_fault(kind="http", status=502, endpoint="submit", process=True, body="bad gateway")
    resp = api.submit()
    assert resp.status_code == 502
    assert resp.json()["error"]["message"] == "bad gateway"
    [job] = emu.admin.jobs()
    assert job["creditsCharged"] == 64  # the ambiguous case: the job exists although the POST "failed"


def test_latency_delays_then_answers_normally(api: Api, emu: EmulatorHandle) -> None:
    rid = api.submit_ok()
    emu.admin.add_fault(kind="latency", delay=0.2, endpoint="status")
    with pytest.raises(requests.Timeout):
        api.session.get(f"{emu.base_url}{GENERATIONS}/{rid}", timeout=0.05)
    assert api.get(rid).status_code == 200  # the fault was used up by the timed-out call
    emu.admin.add_fault(kind="latency", delay=0.05, endpoint="status")
    emu.admin.add_fault(kind="http", status=503, endpoint="status")
    assert api.get(rid).status_code == 503  # latency stacks with the next fault
    assert [f["hits"] for f in emu.admin.faults()] == [1, 1, 1]


def test_drop_mid_response_after_creating_the_job(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.add_fault(kind="drop", endpoint="submit")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        api.submit()
    [job] = emu.admin.jobs()  # the job exists: the answer was lost, not the request
    assert [e["status"] for e in emu.admin.requests()] == ["dropped"]
    assert api.get(job["requestId"]).status_code == 200  # a new connection works


def test_drop_with_raw_socket_sees_headers_and_a_partial_body(api: Api, emu: EmulatorHandle) -> None:
    rid = api.submit_ok()
    emu.admin.add_fault(kind="drop", endpoint="status")
    req = urllib.request.Request(f"{emu.base_url}{GENERATIONS}/{rid}",
                                 headers={"Authorization": f"Bearer {emu.api_key}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
        declared = int(resp.headers["Content-Length"])
        with pytest.raises(Exception, match="IncompleteRead"):
            resp.read()
    assert declared > 0


def test_close_without_response_creates_nothing(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.add_fault(kind="close", endpoint="submit")
    with pytest.raises(requests.ConnectionError):
        api.submit()
    assert emu.admin.jobs() == []
    assert emu.admin.requests()[0]["status"] == "closed"


def test_malformed_json(api: Api, emu: EmulatorHandle) -> None:
    rid = api.submit_ok()
    emu.admin.add_fault(kind="malformed", endpoint="status")
    emu.admin.add_fault(kind="malformed", endpoint="status", status=502, body="<html>Bad Gateway</html>")
    first = api.get(rid)
    assert first.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(first.text)
    second = api.get(rid)
    assert (second.status_code, second.text) == (502, "<html>Bad Gateway</html>")


def test_faults_are_scoped_by_endpoint_method_request_id_and_skip(api: Api, emu: EmulatorHandle) -> None:
    a, b = api.submit_ok(), api.submit_ok()
    emu.admin.add_fault(kind="http", status=500, endpoint="cancel", times=-1)
    emu.admin.add_fault(kind="http", status=503, endpoint="status", request_id=b)
    emu.admin.add_fault(kind="http", status=429, method="GET", endpoint="any", skip=2, times=1)
    assert api.get(a).status_code == 200  # skip 1
    assert api.get(b).status_code == 503  # request-id scoped fault first; counts as seen for skip (2)
    assert api.get(b).status_code == 429  # third GET: skip used up
    assert api.get(b).status_code == 200
    assert api.submit().status_code == 200  # no submit fault
    assert api.cancel(a).status_code == 500
    assert api.cancel(a).status_code == 500  # times=-1: until cleared
    emu.admin.clear_faults()
    assert api.cancel(a).status_code == 200


def test_models_and_files_faults(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.add_fault(kind="http", status=503, endpoint="models")
    assert api.models().status_code == 503
    assert api.models().status_code == 200
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0)
    rid = api.submit_ok()
    url = api.get(rid).json()["output"]["url"]
    emu.admin.add_fault(kind="drop", endpoint="files")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(url, timeout=10).content  # noqa: B018
    assert requests.get(url, timeout=10).status_code == 200
