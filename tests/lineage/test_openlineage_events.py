"""OpenLineage events of real DAG runs: ``airflow dags test`` with the OpenLineage provider's file transport.

Four runs (dags/seedance_lineage_dags.py) against the session emulator, each read back from the events
file, the metadata DB and the emulator:

- ``seedance_lineage_i2v``: a deferred image-to-video generation with ``persist_to``; then submit-only,
  the sensor and the persist operator;
- ``seedance_lineage_t2v``: text-to-video in the worker, no ``persist_to``;
- ``seedance_lineage_retry``: try 1 fails right after its submit, try 2 resumes the same job and defers;
- ``seedance_lineage_hook``: a plain ``@task`` calling the hook and ``persist_video`` (hook-level lineage).

Every event is also scanned for the API key and the signed URLs' secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_seedance.lineage.naming import storage_dataset, url_dataset

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

    from .conftest import LineageCli, LineageRun

pytestmark = pytest.mark.airflow_cli

DAGS = Path(__file__).parent / "dags"
MEDIA_SIGNATURE = "MediaSig0123456789abcdefSECRET"
MEDIA_CREDENTIAL = "AKIAMEDIACREDSECRET42"
SOURCE_TOKEN = "SourceTok0123456789abcdefSECRET"
SIGNED_MEDIA = ("https://cdn.example.com", "/refs/cat.jpg")
SECOND_MEDIA = ("https://images.example.org:8443", "/boards/kite.png")


def _io(event: dict[str, Any], side: str) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in event.get(side, [])]


def _facet(event: dict[str, Any], key: str = "seedanceGeneration") -> dict[str, Any]:
    return dict(event["run"]["facets"].get(key) or {})


def _assert_no_secret(run: LineageRun, emu: EmulatorHandle) -> None:
    assert run.events, "no event was emitted"
    for secret in (emu.api_key, MEDIA_SIGNATURE, MEDIA_CREDENTIAL, SOURCE_TOKEN):
        assert secret not in run.raw_events


@pytest.fixture(scope="module")
def i2v(lineage_cli: LineageCli, seedance_emulator_session: EmulatorHandle) -> LineageRun:
    seedance_emulator_session.admin.reset()
    run = lineage_cli.dags_test("seedance_lineage_i2v")
    assert run.returncode == 0, run.output[-5000:]
    return run


@pytest.fixture(scope="module")
def t2v(lineage_cli: LineageCli, seedance_emulator_session: EmulatorHandle) -> LineageRun:
    seedance_emulator_session.admin.reset()
    run = lineage_cli.dags_test("seedance_lineage_t2v")
    assert run.returncode == 0, run.output[-5000:]
    return run


@pytest.fixture(scope="module")
def retried(lineage_cli: LineageCli, seedance_emulator_session: EmulatorHandle) -> tuple[LineageRun, dict[str, Any]]:
    emu = seedance_emulator_session
    emu.admin.reset()
    # Still running when try 2 starts (retry_delay 1 s), so try 2 resumes it and defers.
    emu.admin.set_next_jobs(prompt_contains="[retry-slow]", queued_seconds=0, processing_seconds=3, count=-1)
    run = lineage_cli.dags_test("seedance_lineage_retry")
    assert run.returncode == 0, run.output[-5000:]
    return run, emu.admin.stats()


@pytest.fixture(scope="module")
def hooked(lineage_cli: LineageCli, seedance_emulator_session: EmulatorHandle) -> LineageRun:
    seedance_emulator_session.admin.reset()
    run = lineage_cli.dags_test("seedance_lineage_hook")
    assert run.returncode == 0, run.output[-5000:]
    return run


# -- image-to-video, deferred, persist_to -------------------------------------------------------------------


def test_i2v_start_names_the_media_and_the_destination_before_anything_is_submitted(i2v: LineageRun) -> None:
    first = i2v.task_events("generate", "START")[0]
    assert _io(first, "inputs") == [SIGNED_MEDIA, SECOND_MEDIA]
    assert len(_io(first, "outputs")) == 1
    assert _io(first, "outputs")[0][0] == "file"
    facet = _facet(first)
    assert "requestId" not in facet
    assert (facet["generationType"], facet["mediaCount"], facet["persisted"]) == ("image-to-video", 2, True)


def test_i2v_complete_after_the_deferral_has_the_job_the_credits_and_the_stored_video(i2v: LineageRun) -> None:
    assert "Pausing task as DEFERRED" in i2v.output  # it really went through the triggerer path
    event = i2v.one("generate", "COMPLETE")
    rid = i2v.xcom("generate", "request_id")
    video_uri = i2v.xcom("generate", "video_uri")
    assert Path(video_uri.removeprefix("file://")).stat().st_size > 0
    assert _io(event, "inputs") == [SIGNED_MEDIA, SECOND_MEDIA]
    assert _io(event, "outputs") == [storage_dataset(video_uri)]
    assert _io(event, "outputs")[0][1] == video_uri.removeprefix("file:///")
    facet = _facet(event)
    assert facet["requestId"] == rid
    assert {k: facet.get(k) for k in ("model", "duration", "resolution", "aspectRatio", "vendorStatus")} == {
        "model": "seedance-2.0", "duration": 5, "resolution": "720p", "aspectRatio": "16:9",
        "vendorStatus": "succeeded",
    }
    assert facet["creditsEstimated"] == facet["creditsCharged"] == i2v.xcom("generate", "credits_charged")
    assert facet["_schemaURL"].endswith("SeedanceGenerationRunFacet.json#/$defs/SeedanceGenerationRunFacet")
    query = _facet(event, "externalQuery")
    assert (query["externalQueryId"], query["source"]) == (rid, "seedance")
    assert event["run"]["facets"]["parent"]["job"]["name"] == "seedance_lineage_i2v"


def test_sensor_and_persist_operator_events(i2v: LineageRun) -> None:
    rid = i2v.xcom("submit")
    submitted = _facet(i2v.one("submit", "COMPLETE"))
    assert submitted["requestId"] == rid
    assert submitted["vendorStatus"] in ("queued", "processing")  # what the submit answered

    waited = i2v.one("wait", "COMPLETE")
    output_url = i2v.xcom("wait", "output_url")
    assert _io(waited, "outputs") == [url_dataset(output_url)]
    assert (_facet(waited)["requestId"], _facet(waited)["vendorStatus"]) == (rid, "succeeded")
    # One START per execution: two when the sensor deferred (its resume starts again), one when the job had
    # finished by its first poke. The first is the one that must say which job it waits for.
    starts = sorted(i2v.task_events("wait", "START"), key=lambda e: e["eventTime"])
    assert starts, "no START event for wait"
    assert _facet(starts[0])["requestId"] == rid

    saved = i2v.one("save", "COMPLETE")
    assert _io(saved, "inputs") == [url_dataset(output_url)]  # without the ?token= of the source URL
    stored = i2v.xcom("save")
    assert _io(saved, "outputs") == [storage_dataset(stored)]
    assert Path(stored.removeprefix("file://")).exists()
    assert _facet(saved)["requestId"] == rid


def test_i2v_events_hold_no_api_key_or_url_secret(i2v: LineageRun, seedance_emulator_session: EmulatorHandle) -> None:
    _assert_no_secret(i2v, seedance_emulator_session)


# -- text-to-video in the worker ---------------------------------------------------------------------------


def test_t2v_complete(t2v: LineageRun, seedance_emulator_session: EmulatorHandle) -> None:
    event = t2v.one("generate", "COMPLETE")
    assert _io(event, "inputs") == []
    assert _io(event, "outputs") == [url_dataset(t2v.xcom("generate", "output_url"))]
    facet = _facet(event)
    assert facet["requestId"] == t2v.xcom("generate", "request_id")
    assert (facet["generationType"], facet["mediaCount"], facet["persisted"]) == ("text-to-video", 0, False)
    assert facet["creditsEstimated"] == facet["creditsCharged"] == 40
    assert facet["vendorStatus"] == "succeeded"
    _assert_no_secret(t2v, seedance_emulator_session)


# -- a retry that resumes the job --------------------------------------------------------------------------


def test_retry_reports_one_job_across_both_tries(
    retried: tuple[LineageRun, dict[str, Any]], seedance_emulator_session: EmulatorHandle
) -> None:
    run, stats = retried
    assert stats["submits"] == 1
    assert stats["faults_injected"] == 1
    failed = run.one("generate", "FAIL")
    completed = run.one("generate", "COMPLETE")
    rid = run.xcom("generate", "request_id")
    assert _facet(failed)["requestId"] == _facet(completed)["requestId"] == rid
    assert _facet(failed, "externalQuery")["externalQueryId"] == rid
    assert failed["run"]["runId"] != completed["run"]["runId"]  # one OpenLineage run per try
    assert _facet(completed)["creditsCharged"] == 64
    assert _facet(completed)["vendorStatus"] == "succeeded"
    assert _io(completed, "inputs") == [SIGNED_MEDIA]
    _assert_no_secret(run, seedance_emulator_session)


# -- hook-level lineage ------------------------------------------------------------------------------------


def test_a_task_using_the_hook_gets_lineage_from_the_hook(
    hooked: LineageRun, seedance_emulator_session: EmulatorHandle
) -> None:
    event = hooked.one("generate_with_hook", "COMPLETE")
    stored = hooked.xcom("generate_with_hook")
    inputs = _io(event, "inputs")
    assert SIGNED_MEDIA in inputs  # reported by SeedanceHook.submit
    host = url_dataset(seedance_emulator_session.base_url)
    assert host is not None
    assert [n for n in inputs if n[0] == host[0] and n[1].startswith("/files/req_")]  # the video read by persist
    # Written by persist_video, named by Airflow's common.io file converter.
    assert _io(event, "outputs") == [("file", stored.removeprefix("file://"))]
    _assert_no_secret(hooked, seedance_emulator_session)
