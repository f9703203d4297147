"""Job lifecycle by time, per-job behaviours, credits and refunds. States and order are asserted, never times."""

from __future__ import annotations

import pytest
from emu_client import T2V, Api

from airflow_provider_seedance.emulator.testing import EmulatorHandle

ORDER = ["queued", "processing", "succeeded"]


def test_a_polled_job_goes_queued_processing_succeeded_in_order(api: Api, emu: EmulatorHandle) -> None:
    # Long enough phases that a 10 ms poll loop sees each one even on a busy machine.
    emu.admin.set_next_jobs(queued_seconds=0.4, processing_seconds=0.4)
    rid = api.submit_ok()
    seen: list[str] = []
    while not seen or seen[-1] != "succeeded":
        status = api.get(rid).json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        assert len(seen) <= 3, seen
    assert seen == ORDER


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [({"queued_seconds": 60}, "queued"),
     ({"queued_seconds": 0, "processing_seconds": 60}, "processing"),
     ({"queued_seconds": 0, "processing_seconds": 0}, "succeeded")],
)
def test_per_job_durations_decide_the_state(api: Api, emu: EmulatorHandle, behaviour: dict, status: str) -> None:
    emu.admin.set_next_jobs(**behaviour)
    rid = api.submit_ok()
    assert api.get(rid).json()["status"] == status


def test_time_scale_sets_the_durations_of_new_jobs(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.configure(time_scale=100)  # minutes-long jobs
    slow = api.submit_ok()
    emu.admin.configure(time_scale=0.01)
    fast = api.submit_ok()
    emu.admin.set_next_jobs(time_scale=50)
    per_job = api.submit_ok()
    jobs = {j["requestId"]: j for j in emu.admin.jobs()}
    assert (jobs[slow]["queuedSeconds"], jobs[slow]["processingSeconds"]) == (100.0, 200.0)
    assert jobs[fast]["queuedSeconds"] == pytest.approx(0.01)
    assert jobs[per_job]["processingSeconds"] == pytest.approx(100.0)
    api.wait_status(fast, {"succeeded"})
    assert api.get(slow).json()["status"] == "queued"


def test_failed_job_reports_the_given_error(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(fail_with="Prompt violates the content policy", fail_code="content_policy")
    rid = api.submit_ok()
    body = api.wait_status(rid, {"failed", "succeeded"})
    assert body["status"] == "failed"
    assert body["output"] is None
    assert body["error"] == {"code": "content_policy", "message": "Prompt violates the content policy"}


def test_never_finishing_job_stays_processing_until_cancelled(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(never_finishes=True, queued_seconds=0)
    rid = api.submit_ok()
    other = api.submit_ok()
    api.wait_status(other, {"succeeded"})
    assert api.get(rid).json()["status"] == "processing"
    assert api.cancel(rid).json()["status"] == "cancelled"
    assert api.get(rid).json()["status"] == "cancelled"


def test_unknown_status_string_is_reported_while_processing(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(status="rendering", never_finishes=True, queued_seconds=0)
    rid = api.submit_ok()
    assert api.get(rid).json()["status"] == "rendering"
    assert emu.admin.stats()["jobs"] == {"rendering": 1}
    emu.admin.set_next_jobs(status="upscaling", queued_seconds=0, processing_seconds=0.2)
    ends = api.submit_ok()
    assert api.wait_status(ends, {"succeeded"})["output"] is not None


def test_success_without_output_url(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(no_output=True)
    rid = api.submit_ok()
    body = api.wait_status(rid, {"succeeded"})
    assert body["output"] is None
    assert api.session.get(f"{emu.base_url}/files/{rid}.mp4").status_code == 404


def test_behaviours_apply_in_order_with_count_and_prompt_filter(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(prompt_contains="[fail]", fail_with="boom", count=-1)
    emu.admin.set_next_jobs(never_finishes=True, count=2)
    first, second, third = (api.submit_ok(T2V) for _ in range(3))
    failing = [api.submit_ok(T2V, prompt=f"[fail] {i}") for i in range(3)]
    jobs = {j["requestId"]: j["behaviour"] for j in emu.admin.jobs()}
    assert jobs[first]["never_finishes"]
    assert jobs[second]["never_finishes"]
    assert jobs[third] is None
    assert all(jobs[rid]["fail_with"] == "boom" for rid in failing)
    assert [b["prompt_contains"] for b in emu.admin.next_jobs()] == ["[fail]"]


def test_credits_charged_at_submit_and_refunded_only_before_processing(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.configure(balance=1000)
    emu.admin.set_next_jobs(queued_seconds=60)
    queued = api.submit_ok()
    emu.admin.set_next_jobs(queued_seconds=0, never_finishes=True)
    processing = api.submit_ok()
    assert emu.admin.stats()["balances"][0]["balance"] == 1000 - 2 * 64
    refund = api.cancel(queued).json()
    assert refund["creditsRefunded"] == 64
    no_refund = api.cancel(processing).json()
    assert no_refund["creditsRefunded"] == 0
    stats = emu.admin.stats()
    assert stats["balances"][0]["balance"] == 1000 - 64
    assert (stats["credits_charged"], stats["credits_refunded"]) == (128, 64)
    assert emu.admin.job(queued)["creditsRefunded"] == 64


def test_402_when_the_balance_runs_out(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.configure(balance=100)
    assert api.submit().json()["creditsCharged"] == 64
    resp = api.submit()
    assert resp.status_code == 402
    body = resp.json()
    assert body["success"] is False
    assert body["error"]["code"] == "insufficient_credits"
    assert (body["error"]["required"], body["error"]["balance"]) == (64, 36)
    assert "64" in body["error"]["message"]
    assert "36" in body["error"]["message"]
    assert api.submit(T2V).status_code == 402  # 40 > 36 as well
    assert len(emu.admin.jobs()) == 1
    emu.admin.configure(balances={emu.api_key: 40})
    assert api.submit(T2V).status_code == 200  # exactly enough
    assert emu.admin.stats()["balances"][0]["balance"] == 0
