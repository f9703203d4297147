"""SeedanceGenerateOperator against the real emulator, run in-process with a minimal task context.

The DAG-level behaviour (real task runner, triggerer inline, retries, XCom in the DB) is covered in
tests/integration; these tests pin each decision of execute() and count requests at the emulator.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_seedance.errors import (
    SeedanceError,
    SeedanceJobFailedError,
    SeedanceJobTimeoutError,
    SeedanceNotFoundError,
    SeedanceUnknownModelError,
    SeedanceValidationError,
)
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import GenerationRequest
from airflow_provider_seedance.operators._job_state import STATE_KEY, JobRecord
from airflow_provider_seedance.operators._wait import WaitInterruptedError
from airflow_provider_seedance.operators.seedance import SeedanceBudgetExceededError, SeedanceGenerateOperator
from airflow_provider_seedance.triggers.seedance import SeedanceJobTrigger

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

IMAGE = "https://example.com/cat.jpg"


def _op(**kwargs: Any) -> SeedanceGenerateOperator:
    defaults: dict[str, Any] = {
        "task_id": "generate",
        "prompt": "a cat surfing a wave",
        "media_urls": [IMAGE],
        "poll_interval": 0.05,
        "max_poll_interval": 0.2,
        "deferrable": False,
    }
    return SeedanceGenerateOperator(**{**defaults, **kwargs})


def _submits(emu: EmulatorHandle) -> int:
    return emu.admin.stats()["submits"]


def _stored(context: dict[str, Any]) -> JobRecord | None:
    return JobRecord.from_json(context["task_state_store"].data.get(STATE_KEY))


def _submit_directly(prompt: str = "earlier try") -> str:
    with SeedanceHook() as hook:
        return hook.submit(GenerationRequest(prompt=prompt, media_urls=(IMAGE,))).request_id


def _remember(context: dict[str, Any], request_id: str, **kwargs: Any) -> JobRecord:
    record = JobRecord(request_id=request_id, started_at=time.time(), **kwargs)
    context["task_state_store"].set(STATE_KEY, record.to_json())
    return record


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


# -- the straight road --------------------------------------------------------------------------------------


def test_text_to_video_in_the_worker(emu: EmulatorHandle, context: dict[str, Any], capsys: Any) -> None:
    op = _op(media_urls=[], metadata={"campaign": "spring", "airflow": {"team": "video"}})
    url = op.execute(context)
    rid = context["ti"].xcom("request_id")
    assert url == f"{emu.base_url}/files/{rid}.mp4"
    assert "no media URLs: text-to-video (media_urls rendered empty)" in capsys.readouterr().out
    body = emu.admin.requests(endpoint="submit")[0]["body"]
    assert "mediaUrls" not in body
    # Lineage under "airflow"; the user's keys (including their own "airflow" entry) untouched.
    assert body["metadata"]["campaign"] == "spring"
    assert body["metadata"]["airflow"] == {
        "team": "video", "dag_id": "unit_dag", "run_id": "manual__2026-01-01T00:00:00+00:00",
        "task_id": "generate", "map_index": -1, "try_number": 1,
    }
    keys = [k for k, _ in context["ti"].pushed]
    # Estimate and spend reservation before submit; request id and charge right after submit, before the URL.
    assert keys == ["credits_estimated", "seedance_spend", "request_id", "credits_charged", "seedance_spend",
                    "output_url"]
    assert context["ti"].xcom("seedance_spend")["state"] == "charged"
    assert context["ti"].xcom("credits_estimated") == context["ti"].xcom("credits_charged") == 40
    record = _stored(context)
    assert record is not None
    assert record.request_id == rid
    assert record.delivered


def test_submit_only_returns_the_request_id(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    rid = _op(wait_for_completion=False).execute(context)
    assert rid == context["ti"].xcom("request_id")
    assert emu.admin.stats()["gets"] == 0
    assert _submits(emu) == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"duration": 99}, "duration"),
        ({"aspect_ratio": "4:3"}, "aspect_ratio"),
        ({"resolution": "8k"}, "resolution"),
        ({"media_urls": [IMAGE] * 6}, "media_urls"),
        ({"media_urls": ["ftp://example.com/a.jpg"]}, "media_urls"),
        ({"media_urls": ["https://example.com/a.exe"]}, "media_urls"),
        ({"prompt": "  "}, "prompt"),
        ({"metadata": "{not json"}, "metadata"),
        ({"webhook_url": "http://example.com/hook"}, "webhook_url"),
        ({"max_credits": "lots"}, "max_credits"),
    ],
)
def test_bad_input_fails_naming_the_field_before_any_request(
    emu: EmulatorHandle, context: dict[str, Any], kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(SeedanceValidationError, match=field) as info:
        _op(**kwargs).execute(context)
    assert info.value.field == field
    assert _submits(emu) == 0


def test_unknown_model_is_looked_up_and_refused_with_zero_posts(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    with pytest.raises(SeedanceUnknownModelError, match=r"seedance-2\.0-fast"):
        _op(model="seedance-9").execute(context)
    assert emu.admin.stats()["models"] >= 1
    assert _submits(emu) == 0


def test_model_from_the_live_catalogue_is_accepted(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    emu.admin.add_model(id="seedance-3.0", durations=[5, 10], aspectRatios=["16:9"], resolutions=["720p"],
                        pricing={"perSecond": {"720p": 10}})
    url = _op(model="seedance-3.0", duration=5, resolution="720p").execute(context)
    assert url.endswith(".mp4")
    assert context["ti"].xcom("credits_estimated") == context["ti"].xcom("credits_charged") == 50


def test_max_credits_refuses_before_any_request(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    with pytest.raises(SeedanceBudgetExceededError, match="exceeds max_credits=50") as info:
        _op(max_credits="50").execute(context)  # templated value: a string
    # Duration and resolution as priced (the vendor's defaults when omitted), never "None".
    assert "duration 5 s (default), resolution 720p (default)" in str(info.value)
    assert "None" not in str(info.value)
    assert isinstance(info.value, AirflowFailException)  # no pointless retries
    assert _submits(emu) == 0
    assert _op(max_credits=64).execute(context).endswith(".mp4")
    assert _submits(emu) == 1


# -- failure, timeout, kill -----------------------------------------------------------------------------------


def test_failed_job_fails_with_request_id_and_vendor_message(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    emu.admin.set_next_jobs(fail_with="content policy violation")
    with pytest.raises(SeedanceJobFailedError, match="content policy violation") as info:
        _op().execute(context)
    assert info.value.request_id == context["ti"].xcom("request_id")
    assert info.value.request_id in str(info.value)


def test_success_without_output_url_is_a_failure(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    emu.admin.set_next_jobs(no_output=True)
    with pytest.raises(SeedanceJobFailedError, match="no output URL"):
        _op().execute(context)
    assert context["ti"].xcom("output_url") is None


def test_deadline_in_the_worker_cancels_and_names_the_request(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    with pytest.raises(SeedanceJobTimeoutError, match="cancelled") as info:
        _op(timeout=0.5).execute(context)
    rid = context["ti"].xcom("request_id")
    assert rid in str(info.value)
    assert emu.admin.job(rid)["status"] == "cancelled"
    record = _stored(context)
    assert record is not None
    assert record.deadline == pytest.approx(record.started_at + 0.5)


def test_on_kill_cancels_the_job_the_worker_waits_for(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    op = _op()
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            op.execute(context)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    _wait_for(lambda: emu.admin.stats()["gets"] >= 2)
    op.on_kill()
    worker.join(10)
    assert not worker.is_alive()
    assert isinstance(outcome[0], WaitInterruptedError)
    rid = context["ti"].xcom("request_id")
    assert emu.admin.job(rid)["status"] == "cancelled"


def test_a_job_that_cannot_be_recorded_is_cancelled(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    class BrokenStore:
        """Takes the intent record written before the POST, then fails: the request id cannot be recorded."""

        def get(self, key: str, default: Any = None) -> Any:
            return default

        def set(self, key: str, value: Any, **kwargs: Any) -> None:
            if value.get("request_id"):
                raise ConnectionError("state store unreachable")

    emu.admin.set_next_jobs(never_finishes=True)
    context["task_state_store"] = BrokenStore()
    with pytest.raises(ConnectionError):
        _op().execute(context)
    (job,) = emu.admin.jobs()
    assert job["status"] == "cancelled"  # a retry could not find it: it must not run on, unpaid-for twice


def test_a_store_that_cannot_take_the_intent_record_stops_the_task_before_the_post(
    emu: EmulatorHandle, context: dict[str, Any]
) -> None:
    class BrokenStore:
        def get(self, key: str, default: Any = None) -> Any:
            return default

        def set(self, key: str, value: Any, **kwargs: Any) -> None:
            raise ConnectionError("state store unreachable")

    context["task_state_store"] = BrokenStore()
    with pytest.raises(ConnectionError):
        _op().execute(context)
    assert emu.admin.jobs() == []  # nothing paid for: a job nobody could find again is never created


def test_on_kill_with_nothing_in_flight_does_nothing(emu: EmulatorHandle) -> None:
    _op().on_kill()
    assert emu.admin.stats()["requests"] == 0


# -- deferrable -------------------------------------------------------------------------------------------


def test_deferrable_defers_with_the_recorded_job_then_completes(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.5)
    op = _op(deferrable=True, timeout=600)
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    trigger = info.value.trigger
    assert isinstance(trigger, SeedanceJobTrigger)
    assert info.value.method_name == "execute_complete"
    assert info.value.timeout is None  # the trigger's own deadline bounds the wait (and cancels)
    record = _stored(context)
    assert record is not None
    assert not record.delivered
    _, kwargs = trigger.serialize()
    assert kwargs["request_id"] == record.request_id == context["ti"].xcom("request_id")
    assert kwargs["deadline"] == record.deadline == pytest.approx(record.started_at + 600)
    assert kwargs["owns_job"] is True
    assert emu.api_key not in repr(kwargs)

    async def fire() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    url = op.execute_complete(context, asyncio.run(fire()))
    assert url == context["ti"].xcom("output_url") == f"{emu.base_url}/files/{record.request_id}.mp4"
    assert _stored(context).delivered  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("payload", "error", "text"),
    [
        ({"event": "timeout", "request_id": "req_9", "result": None, "message": "req_9 missed its deadline"},
         SeedanceJobTimeoutError, "req_9 missed"),
        ({"event": "error", "request_id": "req_9", "result": None, "message": "req_9: 401 Invalid API key"},
         SeedanceError, "401"),
        ({"event": "completed", "request_id": "req_9", "message": "",
          "result": {"request_id": "req_9", "status": "cancelled", "error": "stopped by user"}},
         SeedanceJobFailedError, "req_9 ended cancelled: stopped by user"),
        ({"event": "completed", "request_id": "req_9", "message": "",
          "result": {"request_id": "req_9", "status": "succeeded", "output_url": None}},
         SeedanceJobFailedError, "no output URL"),
    ],
)
def test_execute_complete_raises_with_request_id_and_reason(
    context: dict[str, Any], payload: dict[str, Any], error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text):
        _op(deferrable=True).execute_complete(context, payload)


# -- no double charge ------------------------------------------------------------------------------------


def test_retry_after_a_failure_behind_submit_resumes_with_exactly_one_post(
    emu: EmulatorHandle, context: dict[str, Any], new_ti: Any
) -> None:
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.5)
    emu.admin.add_fault(kind="http", endpoint="status", status=404, times=1, body="not found (replica lag)")
    with pytest.raises(SeedanceNotFoundError):
        _op().execute(context)  # try 1: submitted, recorded, then the status check failed
    first = _stored(context)
    assert first is not None

    context["ti"] = new_ti(try_number=2)
    url = _op().execute(context)  # try 2, same task instance state
    assert _submits(emu) == 1
    assert url.endswith(f"{first.request_id}.mp4")
    assert context["ti"].xcom("request_id") == first.request_id
    assert context["ti"].xcom("credits_charged") == first.credits_charged == 64


def test_resume_of_a_running_job_keeps_its_deadline_when_deferring(
    emu: EmulatorHandle, context: dict[str, Any]
) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    rid = _submit_directly()
    record = _remember(context, rid, deadline=time.time() + 1234)
    with pytest.raises(TaskDeferred) as info:
        _op(deferrable=True, timeout=5).execute(context)
    _, kwargs = info.value.trigger.serialize()
    assert kwargs["request_id"] == rid
    assert kwargs["deadline"] == record.deadline
    assert kwargs["started_at"] == record.started_at
    assert _submits(emu) == 1


def test_resume_of_a_job_that_succeeded_meanwhile_returns_it_without_post_or_wait(
    emu: EmulatorHandle, context: dict[str, Any]
) -> None:
    rid = _submit_directly()
    _wait_for(lambda: emu.admin.job(rid)["status"] == "succeeded")
    _remember(context, rid, credits_charged=64)
    gets_before = emu.admin.stats()["gets"]
    url = _op(deferrable=True).execute(context)
    assert url == f"{emu.base_url}/files/{rid}.mp4"
    assert _submits(emu) == 1
    assert emu.admin.stats()["gets"] == gets_before + 1
    assert _stored(context).delivered  # type: ignore[union-attr]


def test_resume_of_an_expired_deadline_cancels_at_once(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    rid = _submit_directly()
    _remember(context, rid, deadline=time.time() - 1)
    with pytest.raises(SeedanceJobTimeoutError, match=rid):
        _op(timeout=3600).execute(context)
    assert emu.admin.job(rid)["status"] == "cancelled"
    assert _submits(emu) == 1


@pytest.mark.parametrize("how", ["failed", "cancelled", "delivered", "unknown_to_api"])
def test_a_new_job_is_submitted_when_the_old_one_cannot_be_used(
    emu: EmulatorHandle, context: dict[str, Any], how: str
) -> None:
    if how == "failed":
        emu.admin.set_next_jobs(fail_with="boom")
    elif how == "cancelled":
        emu.admin.set_next_jobs(never_finishes=True)
    old = _submit_directly() if how != "unknown_to_api" else "req_from_another_account"
    if how == "cancelled":
        with SeedanceHook() as hook:
            hook.cancel_job(old)
    if how in ("failed", "delivered"):
        _wait_for(lambda: emu.admin.job(old)["status"] in ("failed", "succeeded"))
    _remember(context, old, delivered=how == "delivered")
    url = _op().execute(context)
    new = context["ti"].xcom("request_id")
    assert new != old
    assert url.endswith(f"{new}.mp4")
    assert _submits(emu) == (1 if how == "unknown_to_api" else 2)
    record = _stored(context)
    assert record is not None
    assert record.request_id == new


def test_resume_with_submit_only_returns_the_old_request_id(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    rid = _submit_directly()
    _remember(context, rid)
    assert _op(wait_for_completion=False).execute(context) == rid
    assert _submits(emu) == 1


def test_not_resumable_submits_every_time(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    rid = _submit_directly()
    _remember(context, rid)
    _op(resumable=False, wait_for_completion=False).execute(context)
    assert _submits(emu) == 2


# -- construction ----------------------------------------------------------------------------------------


def test_templated_fields_cover_every_api_field_and_no_secret() -> None:
    fields = set(SeedanceGenerateOperator.template_fields)
    assert {"prompt", "media_urls", "model", "aspect_ratio", "duration", "resolution", "webhook_url",
            "metadata", "max_credits"} <= fields
    assert "seedance_conn_id" not in fields


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"poll_interval": 0}, "poll_interval must be a number of seconds > 0"),
        ({"poll_interval": 10, "max_poll_interval": 1}, "max poll interval"),
        ({"timeout": -5}, "timeout"),
        ({"timeout": 0}, "timeout"),
        ({"persist_to": "/tmp/v.mp4", "wait_for_completion": False}, "persist_to needs wait_for_completion"),
    ],
)
def test_bad_settings_fail_at_parse_time(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _op(**kwargs)


def test_construction_makes_no_request(emu: EmulatorHandle) -> None:
    _op(model="seedance-9")
    assert emu.admin.stats()["requests"] == 0


# -- persist_to ----------------------------------------------------------------------------------------------


def test_persist_to_saves_the_video_and_returns_the_stored_uri(
    emu: EmulatorHandle, context: dict[str, Any], tmp_path: Any
) -> None:
    target = tmp_path / "videos" / "clip.mp4"
    returned = _op(persist_to=str(target)).execute(context)
    rid = context["ti"].xcom("request_id")
    # The stored copy is the return value (the vendor's URL expires); output_url keeps the vendor's URL.
    assert returned == f"file://{target}"
    assert context["ti"].xcom("output_url") == f"{emu.base_url}/files/{rid}.mp4"
    assert target.read_bytes()[4:8] == b"ftyp"
    assert context["ti"].xcom("video_uri") == f"file://{target}"
    assert [p.name for p in target.parent.iterdir()] == ["clip.mp4"]  # no temp file left beside it


def test_a_failed_save_is_retried_on_the_same_job_without_paying_again(
    emu: EmulatorHandle, context: dict[str, Any], tmp_path: Any, new_ti: Any
) -> None:
    from airflow_provider_seedance.persist import SeedancePersistError

    target = tmp_path / "clip.mp4"
    with pytest.raises(SeedancePersistError, match="more than max_bytes=100") as info:
        _op(persist_to=str(target), persist_max_bytes=100).execute(context)
    assert not target.exists()
    # The message names the field and says what a retry does.
    assert f"saving its video to persist_to='{target}' failed" in str(info.value)
    assert "a retry of this task saves the same video again without paying for a new generation" in str(info.value)
    record = _stored(context)
    assert record is not None
    assert not record.delivered  # the retry must find the finished job, not submit a new one

    context["ti"] = new_ti()
    returned = _op(persist_to=str(target)).execute(context)
    assert returned == f"file://{target}"
    assert context["ti"].xcom("output_url").endswith(f"/{record.request_id}.mp4")
    assert target.read_bytes()[4:8] == b"ftyp"
    assert _submits(emu) == 1


def _bad_persist_targets(tmp_path: Any) -> list[str]:
    videos = tmp_path / "videos"
    videos.mkdir()
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"a file where a directory should be")
    return [
        str(videos),  # an existing directory
        f"{videos}/",
        f"file://{videos}",
        f"file://{videos}/",
        f"{blocker}/clip.mp4",  # its parent is a file
        "/proc/seedance/clip.mp4",  # nothing can be created there, not even by root
        "s3://bucket/videos/",  # object stores: only the trailing slash is checked
    ]


def test_a_persist_to_that_cannot_take_a_file_is_refused_before_any_post(
    emu: EmulatorHandle, context: dict[str, Any], tmp_path: Any
) -> None:
    for bad in _bad_persist_targets(tmp_path):
        with pytest.raises(SeedanceValidationError, match="Invalid persist_to") as info:
            _op(persist_to=bad).execute(context)
        assert info.value.field == "persist_to"
        assert "a file path" in str(info.value)
        assert "Nothing was submitted" in str(info.value)
    # Nothing reached the emulator's submit endpoint: no money spent.
    assert emu.admin.requests(endpoint="submit") == []
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["blocker", "videos"]  # no temp file anywhere

    # A file under that directory (its parents created on the way) still works.
    target = tmp_path / "videos" / "day" / "clip.mp4"
    assert _op(persist_to=f"file://{target}").execute(context) == f"file://{target}"
    assert target.read_bytes()[4:8] == b"ftyp"
    assert len(emu.admin.requests(endpoint="submit")) == 1
