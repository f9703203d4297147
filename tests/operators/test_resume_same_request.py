"""A retry resumes only the same request (issue 15, item 5): the real operator against the emulator.

The job record keeps :meth:`GenerationRequest.digest` of what decides the video (prompt, media URLs, model,
aspect ratio, duration, resolution). A retry whose rendered request differs cancels the earlier job and
submits anew; one that differs only in metadata (the lineage holds the try number) or the webhook resumes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import DIGEST_VERSION, GenerationRequest
from airflow_provider_seedance.operators._job_state import STATE_KEY, JobRecord
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

IMAGE = "https://example.com/cat.jpg"
CHANGED = "submitted for a different request"


def _op(**kwargs: Any) -> SeedanceGenerateOperator:
    defaults: dict[str, Any] = {
        "task_id": "generate",
        "prompt": "a cat surfing a wave",
        "media_urls": [IMAGE],
        "poll_interval": 0.05,
        "max_poll_interval": 0.2,
        "deferrable": True,
    }
    return SeedanceGenerateOperator(**{**defaults, **kwargs})


def _stored(context: dict[str, Any]) -> JobRecord:
    record = JobRecord.from_json(context["task_state_store"].data.get(STATE_KEY))
    assert record is not None
    return record


def _deferred_request_id(op: SeedanceGenerateOperator, context: dict[str, Any]) -> str:
    with pytest.raises(TaskDeferred) as info:
        op.execute(context)
    _, kwargs = info.value.trigger.serialize()
    return str(kwargs["request_id"])


def _posts(emu: EmulatorHandle) -> list[dict[str, Any]]:
    return emu.admin.requests(endpoint="submit")


def _cancels(emu: EmulatorHandle) -> list[dict[str, Any]]:
    return emu.admin.requests(endpoint="cancel")


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


@pytest.mark.parametrize("change", [
    {"prompt": "a cat surfing a much bigger wave"},
    {"media_urls": ["https://example.com/dog.jpg"]},
    {"duration": 10},
    {"resolution": "1080p"},
    {"aspect_ratio": "9:16"},
])
def test_a_changed_request_cancels_the_earlier_job_and_submits_anew(
    emu: EmulatorHandle, context: dict[str, Any], new_ti: Any, capsys: Any, change: dict[str, Any]
) -> None:
    emu.admin.set_next_jobs(never_finishes=True, count=2)
    job_1 = _deferred_request_id(_op(), context)  # try 1: submitted, recorded, deferred; then the try is lost
    first = _stored(context)
    assert first.request_id == job_1
    assert first.request_digest is not None
    assert first.request_digest.startswith(f"{DIGEST_VERSION}:")
    capsys.readouterr()

    context["ti"] = new_ti(try_number=2)
    job_2 = _deferred_request_id(_op(**change), context)  # try 2: the rendered request differs

    assert job_2 != job_1
    assert len(_posts(emu)) == 2
    assert [c["requestId"] for c in _cancels(emu)] == [job_1]
    assert emu.admin.job(job_1)["status"] == "cancelled"
    second = _stored(context)
    assert second.request_id == job_2
    assert second.request_digest not in (None, first.request_digest)
    assert second.earlier_credits == first.credits_charged  # job 1's charge still counts in the run's spend
    out = capsys.readouterr().out
    assert CHANGED in out
    assert job_1 in out


def test_a_metadata_or_webhook_change_resumes_the_earlier_job_without_a_second_post(
    emu: EmulatorHandle, context: dict[str, Any], new_ti: Any, capsys: Any
) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    job_1 = _deferred_request_id(_op(metadata={"rendered_at": "2026-11-27T10:00:00"}), context)
    first = _stored(context)

    # Try 2: another timestamp in metadata, another webhook, and the lineage's try number is 2 now.
    context["ti"] = new_ti(try_number=2)
    resumed = _deferred_request_id(
        _op(metadata={"rendered_at": "2026-11-27T10:05:00"}, webhook_url="https://hooks.example.com/done"), context
    )

    assert resumed == job_1
    assert len(_posts(emu)) == 1
    assert _cancels(emu) == []
    assert emu.admin.job(job_1)["status"] in ("queued", "processing")  # still running, not cancelled
    assert _stored(context) == first
    assert CHANGED not in capsys.readouterr().out


def test_a_job_that_succeeded_for_another_request_is_not_reused(
    emu: EmulatorHandle, context: dict[str, Any], new_ti: Any
) -> None:
    emu.admin.set_next_jobs(queued_seconds=2, processing_seconds=0)
    job_1 = _deferred_request_id(_op(), context)
    # Meanwhile the earlier job succeeds: its video shows the old prompt, and the vendor answers 409 to a cancel.
    _wait_for(lambda: emu.admin.job(job_1)["status"] == "succeeded")
    context["ti"] = new_ti(try_number=2)
    url = _op(prompt="a cat surfing at night", deferrable=False).execute(context)

    job_2 = context["ti"].xcom("request_id")
    assert job_2 != job_1
    assert url.endswith(f"{job_2}.mp4")
    assert len(_posts(emu)) == 2
    assert [(c["requestId"], c["status"]) for c in _cancels(emu)] == [(job_1, 409)]  # finished already: fine
    assert emu.admin.job(job_1)["status"] == "succeeded"


def test_a_record_from_before_the_digest_resumes_as_before(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    with SeedanceHook() as hook:
        job_1 = hook.submit(GenerationRequest(prompt="whatever the earlier version sent", media_urls=(IMAGE,)))
    old_format = JobRecord(request_id=job_1.request_id, started_at=time.time()).to_json()
    del old_format["request_digest"]  # exactly what the previous version stored
    context["task_state_store"].set(STATE_KEY, old_format)

    assert _deferred_request_id(_op(), context) == job_1.request_id
    assert len(_posts(emu)) == 1
    assert _cancels(emu) == []


# -- the digest and the record, without the API ---------------------------------------------------------------


def test_the_digest_is_stable_and_covers_only_the_deciding_fields() -> None:
    base = GenerationRequest(prompt="a kite", media_urls=[IMAGE], duration=5, resolution="720p", aspect_ratio="16:9")
    # Pinned: a change here makes every retry in flight during an upgrade pay for a second job.
    assert base.digest() == GenerationRequest(
        prompt="a kite", media_urls=IMAGE, duration="5", resolution="720p", aspect_ratio="16:9",
        metadata={"airflow": {"try_number": 3}}, webhook_url="https://hooks.example.com/x",
    ).digest()
    assert base.digest() == "v1:" + _expected_v1_hex(base)
    assert GenerationRequest(prompt="x").digest() == GenerationRequest(prompt="x", media_urls=[]).digest()
    for change in ({"prompt": "a kite "}, {"media_urls": [IMAGE, IMAGE]}, {"model": "seedance-2.0-fast"},
                   {"aspect_ratio": "1:1"}, {"duration": 10}, {"resolution": "1080p"}):
        fields = {**base.to_dict(), **change}
        assert GenerationRequest.from_dict(fields).digest() != base.digest(), change


def _expected_v1_hex(request: GenerationRequest) -> str:
    import hashlib
    import json

    body = {"aspect_ratio": request.aspect_ratio, "duration": request.duration, "media_urls": list(request.media_urls
            or ()), "model": request.model, "prompt": request.prompt, "resolution": request.resolution}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_record_keeps_the_digest_and_reads_old_records() -> None:
    digest = GenerationRequest(prompt="a kite").digest()
    record = JobRecord("req_1", started_at=1.0, request_digest=digest)
    assert JobRecord.from_json(record.to_json()) == record
    assert record.matches_request(digest) is True
    assert record.matches_request(GenerationRequest(prompt="a hawk").digest()) is False
    assert record.matches_request("v2:" + digest.partition(":")[2]) is None  # another digest version: unknown
    old = JobRecord.from_json({"request_id": "req_1", "started_at": 1.0})
    assert old is not None
    assert old.request_digest is None
    assert old.matches_request(digest) is None
    assert JobRecord.from_json({"request_id": "req_1", "request_digest": 42}).request_digest is None  # type: ignore[union-attr]
