"""End-to-end: the operator, trigger, sensor and link in real DAG runs (``airflow dags test``).

Two DAG runs (see dags/seedance_it_dags.py), each read back from the metadata DB, the CLI output
(task logs) and the emulator's request log:

- ``seedance_it_generate``: deferrable and worker generations, text-to-video, submit-only + sensors
  (deferrable, reschedule, soft_fail), a failed job, a deadline that cancels, an execution_timeout
  that makes on_kill cancel.
- ``seedance_it_retry``: try 1 of each task loses its first status check after submitting (a
  permanent 404); try 2 must resume the same job - deferring again or reusing its finished result -
  with exactly one POST each, through the task state store and through the Variable fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

    from .conftest import AirflowCli, DagRunResult

pytestmark = pytest.mark.airflow_cli


@dataclass
class Observed:
    """A DAG run and what the emulator saw during it."""

    run: DagRunResult
    emu: EmulatorHandle
    requests: list[dict[str, Any]]
    jobs: dict[str, dict[str, Any]]
    stats: dict[str, Any]

    def submits_of(self, task_id: str) -> list[dict[str, Any]]:
        return [
            r for r in self.requests
            if r["endpoint"] == "submit" and r["body"]["metadata"]["airflow"]["task_id"] == task_id
        ]

    def job_of(self, task_id: str) -> dict[str, Any]:
        return self.jobs[self.run.xcom(task_id, "request_id")]

    def url(self, request_id: str) -> str:
        return f"{self.emu.base_url}/files/{request_id}.mp4"


def _observe(cli: AirflowCli, emu: EmulatorHandle, dag_id: str) -> Observed:
    run = cli.dags_test(dag_id)
    return Observed(
        run=run,
        emu=emu,
        requests=emu.admin.requests(),
        jobs={j["requestId"]: j for j in emu.admin.jobs()},
        stats=emu.admin.stats(),
    )


@pytest.fixture(scope="module")
def generate(airflow_cli: AirflowCli, seedance_emulator_session: EmulatorHandle) -> Observed:
    emu = seedance_emulator_session
    emu.admin.reset()
    emu.admin.set_next_jobs(prompt_contains="[fail]", fail_with="content policy violation", count=-1)
    emu.admin.set_next_jobs(prompt_contains="[hang]", never_finishes=True, count=-1)
    emu.admin.set_next_jobs(prompt_contains="[slow]", never_finishes=True, count=-1)
    emu.admin.set_next_jobs(prompt_contains="[sensor]", queued_seconds=0, processing_seconds=2, count=-1)
    return _observe(airflow_cli, emu, "seedance_it_generate")


@pytest.fixture(scope="module")
def retry(airflow_cli: AirflowCli, seedance_emulator_session: EmulatorHandle) -> Observed:
    emu = seedance_emulator_session
    emu.admin.reset()
    # Still running when try 2 starts (retry_delay 1 s), so try 2 must defer again.
    emu.admin.set_next_jobs(prompt_contains="[retry-slow]", queued_seconds=0, processing_seconds=3, count=-1)
    return _observe(airflow_cli, emu, "seedance_it_retry")


# -- seedance_it_generate -----------------------------------------------------------------------------------


def test_task_states(generate: Observed) -> None:
    states = {t: generate.run.state(t) for t in (
        "deferrable_i2v", "worker_t2v", "submit_only", "sensor_deferrable", "sensor_reschedule",
        "failed_job", "sensor_soft_fail", "timeout_job", "killed_job",
    )}
    assert states == {
        "deferrable_i2v": "success", "worker_t2v": "success", "submit_only": "success",
        "sensor_deferrable": "success", "sensor_reschedule": "success", "failed_job": "failed",
        "sensor_soft_fail": "skipped", "timeout_job": "failed", "killed_job": "failed",
    }, generate.run.output[-5000:]


def test_deferrable_generation_returns_the_url_in_xcom_and_the_link(generate: Observed) -> None:
    run = generate.run
    rid = run.xcom("deferrable_i2v", "request_id")
    url = generate.url(rid)
    assert run.xcom("deferrable_i2v") == url
    assert run.xcom("deferrable_i2v", "output_url") == url
    assert run.xcom("deferrable_i2v", "_link_SeedanceVideoLink") == url
    assert run.xcom("deferrable_i2v", "credits_estimated") == run.xcom("deferrable_i2v", "credits_charged") == 64
    assert generate.jobs[rid]["status"] == "succeeded"
    assert run.task_state("deferrable_i2v", "seedance_job")["delivered"] is True
    # It really went through the trigger (dags test runs it inline), and so did the other deferrable ones.
    assert run.was_deferred("deferrable_i2v")
    assert run.was_deferred("failed_job")
    assert run.was_deferred("timeout_job")
    assert not run.was_deferred("worker_t2v")


def test_metadata_carries_templated_user_keys_and_airflow_lineage(generate: Observed) -> None:
    body = generate.submits_of("deferrable_i2v")[0]["body"]
    assert body["mediaUrls"] == ["https://example.com/cat.jpg"]
    metadata = body["metadata"]
    assert metadata["campaign"] == "spring"
    assert metadata["run"] == generate.run.run_id  # templated
    assert metadata["airflow"] == {
        "dag_id": "seedance_it_generate", "run_id": generate.run.run_id, "task_id": "deferrable_i2v",
        "map_index": -1, "try_number": 1,
    }


def test_text_to_video_in_the_worker(generate: Observed) -> None:
    run = generate.run
    body = generate.submits_of("worker_t2v")[0]["body"]
    assert "mediaUrls" not in body
    assert body["prompt"] == "[ok] a lighthouse at dusk"
    assert body["duration"] == 5
    rid = run.xcom("worker_t2v", "request_id")
    assert run.xcom("worker_t2v") == generate.url(rid)
    assert run.xcom("worker_t2v", "credits_charged") == 40  # the text-to-video price
    assert "no media URLs: text-to-video" in run.output


def test_submit_only_and_the_sensors(generate: Observed) -> None:
    run = generate.run
    rid = run.xcom("submit_only")
    assert rid == run.xcom("submit_only", "request_id")
    assert run.xcom("submit_only", "_link_SeedanceVideoLink") == ""  # nothing finished in that task
    for sensor in ("sensor_deferrable", "sensor_reschedule"):
        assert run.xcom(sensor) == run.xcom(sensor, "output_url") == generate.url(rid)
        assert run.xcom(sensor, "_link_SeedanceVideoLink") == generate.url(rid)
    assert generate.stats["cancels"] == 2  # the sensors cancelled nothing (the 2 are timeout_job, killed_job)


def test_failed_job_fails_the_task_with_request_id_and_vendor_message(generate: Observed) -> None:
    rid = generate.run.xcom("failed_job", "request_id")
    assert f"Seedance generation {rid} ended failed: generation_failed: content policy violation" in generate.run.output
    assert generate.run.xcom("failed_job", "_link_SeedanceVideoLink") == ""


def test_deadline_cancels_the_job_and_fails_naming_it(generate: Observed) -> None:
    rid = generate.run.xcom("timeout_job", "request_id")
    assert generate.jobs[rid]["status"] == "cancelled"
    assert [r for r in generate.requests if r["endpoint"] == "cancel" and r["requestId"] == rid]
    assert "SeedanceJobTimeoutError" in generate.run.output
    assert f"Seedance generation {rid} did not finish before its deadline" in generate.run.output


def test_execution_timeout_runs_on_kill_which_cancels_the_job(generate: Observed) -> None:
    rid = generate.run.xcom("killed_job", "request_id")
    assert generate.jobs[rid]["status"] == "cancelled"
    assert f"Cancelled Seedance generation {rid}" in generate.run.output
    assert "AirflowTaskTimeout" in generate.run.output


def test_one_post_per_generating_task_and_nothing_left_running(generate: Observed) -> None:
    for task_id in ("deferrable_i2v", "worker_t2v", "submit_only", "failed_job", "timeout_job", "killed_job"):
        assert len(generate.submits_of(task_id)) == 1, task_id
    assert generate.stats["submits"] == 6
    assert {j["status"] for j in generate.jobs.values()} <= {"succeeded", "failed", "cancelled"}


def test_the_api_key_appears_in_no_log_xcom_or_db_row(generate: Observed) -> None:
    key = generate.emu.api_key
    assert key not in generate.run.output
    assert key not in generate.run.db_dump()
    assert all(r["auth"] == "valid" for r in generate.requests if r["endpoint"] != "models")


# -- seedance_it_retry ------------------------------------------------------------------------------------


def test_retry_after_a_failure_behind_submit_posts_exactly_once(retry: Observed) -> None:
    run = retry.run
    assert run.returncode == 0, run.output[-5000:]
    assert retry.stats["faults_injected"] == 2  # each task's try 1 really failed after submitting
    assert run.output.count("SeedanceNotFoundError") >= 2
    for task_id in ("resume_deferrable", "resume_variable_store"):
        assert run.state(task_id) == "success"
        assert run.try_number(task_id) == 2
        posts = retry.submits_of(task_id)
        assert len(posts) == 1, task_id
        assert posts[0]["body"]["metadata"]["airflow"]["try_number"] == 1
        rid = run.xcom(task_id, "request_id")
        assert run.xcom(task_id) == run.xcom(task_id, "output_url") == retry.url(rid)
        assert run.xcom(task_id, "credits_charged") == 40  # recovered from the record, not a new charge
    assert retry.stats["submits"] == 2


def test_deferrable_retry_defers_again_on_the_same_job(retry: Observed) -> None:
    rid = retry.run.xcom("resume_deferrable", "request_id")
    assert "It is still running: resuming the wait" in retry.run.output
    record = retry.run.task_state("resume_deferrable", "seedance_job")
    assert record["request_id"] == rid
    assert record["delivered"] is True


def test_variable_fallback_reuses_the_finished_job_and_cleans_up(retry: Observed) -> None:
    assert "(variable store): status succeeded" in retry.run.output
    assert "It already succeeded: returning its result, nothing is submitted" in retry.run.output
    assert not [k for k in retry.run.variable_keys() if k.startswith("seedance_job__")]
    assert retry.emu.api_key not in retry.run.output
