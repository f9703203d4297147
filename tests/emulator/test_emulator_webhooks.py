"""Webhook delivery to a real receiver on 127.0.0.1, with retries."""

from __future__ import annotations

import time

from emu_client import Api, Receiver

from airflow_provider_seedance.emulator.testing import EmulatorHandle


def _wait(predicate, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_final_result_is_posted_to_the_webhook(api: Api, emu: EmulatorHandle, receiver: Receiver) -> None:
    rid = api.submit_ok(webhookUrl=receiver.url, metadata={"run": "r1"})
    assert receiver.event.wait(20)
    [call] = receiver.calls
    assert call["path"] == "/hook"
    assert call["content_type"].startswith("application/json")
    assert call["body"] == api.get(rid).json()  # the GET-shaped final body
    assert call["body"]["status"] == "succeeded"
    assert call["body"]["metadata"] == {"run": "r1"}
    [attempt] = emu.admin.webhooks()
    assert (attempt["requestId"], attempt["attempt"], attempt["httpStatus"], attempt["delivered"]) == (
        rid, 1, 200, True)
    assert emu.admin.stats()["webhooks_delivered"] == 1


def test_failed_delivery_is_retried_until_it_succeeds(api: Api, emu: EmulatorHandle, receiver: Receiver) -> None:
    emu.admin.configure(webhook_backoff=0.01)
    receiver.script = [500, 503]
    rid = api.submit_ok(webhookUrl=receiver.url)
    assert receiver.event.wait(20)
    _wait(lambda: len(emu.admin.webhooks()) == 3, "three attempts")
    assert [c["answered"] for c in receiver.calls] == [500, 503, 200]
    assert all(c["body"]["requestId"] == rid for c in receiver.calls)
    assert [(a["attempt"], a["delivered"]) for a in emu.admin.webhooks()] == [(1, False), (2, False), (3, True)]


def test_delivery_gives_up_after_the_configured_attempts(api: Api, emu: EmulatorHandle, receiver: Receiver) -> None:
    emu.admin.configure(webhook_backoff=0.01, webhook_attempts=2)
    receiver.script = [500, 500, 500]
    api.submit_ok(webhookUrl=receiver.url)
    _wait(lambda: emu.admin.stats()["webhooks_failed"] == 1, "the delivery to fail")
    assert len(receiver.calls) == 2
    assert emu.admin.stats()["webhooks_delivered"] == 0


def test_unreachable_receiver_is_retried_then_given_up(api: Api, emu: EmulatorHandle, receiver: Receiver) -> None:
    url = receiver.url
    receiver.close()  # nothing listens there any more
    emu.admin.configure(webhook_backoff=0.01, webhook_attempts=3)
    api.submit_ok(webhookUrl=url)
    _wait(lambda: emu.admin.stats()["webhooks_failed"] == 1, "the delivery to fail")
    attempts = emu.admin.webhooks()
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert all("error" in a and not a["delivered"] for a in attempts)


def test_cancel_and_failure_are_delivered_too(api: Api, emu: EmulatorHandle, receiver: Receiver) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    cancelled = api.submit_ok(webhookUrl=receiver.url)
    api.cancel(cancelled)
    emu.admin.set_next_jobs(fail_with="boom")
    failed = api.submit_ok(webhookUrl=receiver.url)
    _wait(lambda: len(receiver.calls) == 2, "two deliveries")
    by_id = {c["body"]["requestId"]: c["body"] for c in receiver.calls}
    assert by_id[cancelled]["status"] == "cancelled"
    assert by_id[failed]["status"] == "failed"
    assert by_id[failed]["error"]["message"] == "boom"


def test_never_finishing_job_sends_no_webhook_and_reset_drops_pending_ones(
    api: Api, emu: EmulatorHandle, receiver: Receiver
) -> None:
    emu.admin.set_next_jobs(never_finishes=True)
    api.submit_ok(webhookUrl=receiver.url)
    emu.admin.set_next_jobs(queued_seconds=0.3, processing_seconds=0)
    api.submit_ok(webhookUrl=receiver.url)
    emu.admin.reset()
    probe = api.submit_ok(webhookUrl=receiver.url)  # a later job's delivery proves the loop kept running
    assert receiver.event.wait(20)
    time.sleep(0.4)  # past the dropped job's due time
    assert [c["body"]["requestId"] for c in receiver.calls] == [probe]


def test_a_webhook_to_a_remote_host_is_logged_not_sent(api: Api, emu: EmulatorHandle) -> None:
    # The emulator is a local stand-in: nothing leaves the machine, not even a DNS query for the host.
    rid = api.submit_ok(webhookUrl="https://hooks.example.com/done?token=1")
    _wait(lambda: emu.admin.stats()["webhooks_failed"] == 1, "the delivery to be given up")
    [attempt] = emu.admin.webhooks()
    assert attempt["requestId"] == rid
    assert attempt["delivered"] is False
    assert "loopback hosts only" in attempt["error"]
    assert emu.admin.stats()["webhooks_delivered"] == 0
