"""What `make e2e-distributed` proves, one function per scenario; each asserts and returns its figures.

1+2. ``backfill_with_triggerer_failover``: the backfill example over 50 rows, deferred; the triggers
     spread over both triggerers; one triggerer SIGKILLed while they wait; the survivor takes them
     over; every task succeeds; one POST per row; nothing cancelled.
3.   ``worker_kill_resumes``: a worker SIGKILLed while it waits for a submitted generation; the retry
     on the other worker resumes the same request id.
4.   ``mark_failed_cancels``: a deferred task marked failed through the REST API; the trigger's
     ``on_kill`` cancels its job at the emulator.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from airflow_cluster import AirflowCluster, wait_for
from processes import ProcessRegistry

from airflow_provider_seedance.emulator.testing import EmulatorAdmin

__all__ = ["BACKFILL_DAG", "Context", "ScenarioError", "backfill_with_triggerer_failover", "mark_failed_cancels",
           "worker_kill_resumes"]

BACKFILL_DAG = "example_seedance_asset_backfill"
WORKER_DAG = "seedance_dist_worker_wait"
DEFERRED_DAG = "seedance_dist_deferred"
FINISHED = {"success", "failed", "upstream_failed", "skipped", "removed"}


class ScenarioError(AssertionError):
    """A scenario's assertion failed; the message says what was expected and what was seen."""


def check(condition: bool, message: str) -> None:
    """Assert (also under ``python -O``).

    :param condition: must hold.
    :param message: what failed.
    """
    if not condition:
        raise ScenarioError(message)


@dataclass
class Context:
    """What the scenarios share.

    :param cluster: the Airflow cluster.
    :param admin: the emulator's admin client.
    :param registry: the process registry.
    :param rows: rows of the backfill table.
    :param job_seconds: (queued, processing) seconds of an emulator job.
    :param video_dir: the ``seedance_video_dir`` Variable.
    """

    cluster: AirflowCluster
    admin: EmulatorAdmin
    registry: ProcessRegistry
    rows: int
    job_seconds: tuple[float, float]
    video_dir: Path
    figures: dict[str, Any] = field(default_factory=dict)

    def log(self, message: str) -> None:
        """Progress line.

        :param message: the text.
        """
        print(f"    {message}", flush=True)


# -- emulator request log helpers -------------------------------------------------------------------

def _lineage(entry: dict[str, Any]) -> dict[str, Any]:
    body = entry.get("body")
    metadata = body.get("metadata") if isinstance(body, dict) else None
    lineage = metadata.get("airflow") if isinstance(metadata, dict) else None
    return lineage if isinstance(lineage, dict) else {}


def submits_of(admin: EmulatorAdmin, dag_id: str, run_id: str | None = None) -> list[dict[str, Any]]:
    """POSTs of generations whose Airflow lineage names this DAG (and run).

    :param admin: the emulator's admin client.
    :param dag_id: the DAG.
    :param run_id: the run, or None for any.
    """
    return [e for e in admin.requests("submit")
            if _lineage(e).get("dag_id") == dag_id and (run_id is None or _lineage(e).get("run_id") == run_id)]


def submits_with(admin: EmulatorAdmin, token: str) -> list[dict[str, Any]]:
    """POSTs whose prompt contains ``token``.

    :param admin: the emulator's admin client.
    :param token: unique text put in the prompt.
    """
    return [e for e in admin.requests("submit")
            if isinstance(e.get("body"), dict) and token in str(e["body"].get("prompt", ""))]


def calls_for(admin: EmulatorAdmin, endpoint: str, request_ids: set[str]) -> list[dict[str, Any]]:
    """Requests of one endpoint (``status``, ``cancel``) about these jobs.

    :param admin: the emulator's admin client.
    :param endpoint: the endpoint kind.
    :param request_ids: the jobs.
    """
    return [e for e in admin.requests(endpoint) if e.get("requestId") in request_ids]


# -- scenario 1 + 2 ---------------------------------------------------------------------------------

def _triggerer_names(ctx: Context) -> dict[int, str]:
    """Triggerer job id -> our component name."""
    return {job_id: name for name, job_id in ctx.cluster.triggerer_jobs.items()}


def backfill_with_triggerer_failover(ctx: Context) -> None:
    """Scenarios 1 and 2 (see the module docstring).

    :param ctx: the shared context.
    """
    cluster, admin = ctx.cluster, ctx.admin
    started = time.monotonic()
    queued, processing = ctx.job_seconds
    admin.configure(time_scale=1.0, queued_seconds=queued, processing_seconds=processing)
    # Unpausing makes the scheduler create the latest daily run (catchup=False): the run we watch.
    cluster.unpause(BACKFILL_DAG)
    runs = wait_for(lambda: cluster.api("GET", f"/dags/{BACKFILL_DAG}/dagRuns")["dag_runs"], timeout=120,
                    what=f"the scheduler to create a run of {BACKFILL_DAG}")
    run_id = runs[0]["dag_run_id"]
    ctx.log(f"run {run_id}: {ctx.rows} rows, emulator jobs take {queued + processing:.0f} s")

    # Wait until every row's trigger exists at once, recording who holds which trigger.
    peak: dict[int, int | None] = {}

    def all_waiting() -> bool:
        cluster.check_alive("scheduler", "triggerer-1", "triggerer-2", "worker-1", "worker-2")
        nonlocal peak
        rows = cluster.trigger_assignments(BACKFILL_DAG, run_id)
        current = {tid: job for tid, job, task, _ in rows if task == "generate_video"}
        if len(current) >= len(peak):
            peak = current
        return len(current) == ctx.rows and all(job is not None for job in current.values())

    wait_for(all_waiting, timeout=240, interval=0.5,
             what=f"all {ctx.rows} generations deferred and assigned at once (peak {len(peak)}); "
                  "jobs may be too short for this machine")
    deferred_after = time.monotonic() - started
    names = _triggerer_names(ctx)
    spread = Counter(names.get(job, str(job)) for job in peak.values() if job is not None)
    ctx.log(f"all {ctx.rows} deferred after {deferred_after:.1f} s; triggers per triggerer: {dict(spread)}")
    check(len(spread) == 2 and min(spread.values()) > 0, f"triggers not spread over both triggerers: {dict(spread)}")
    posts = submits_of(admin, BACKFILL_DAG, run_id)
    check(len(posts) == ctx.rows, f"expected {ctx.rows} POSTs once all deferred, saw {len(posts)}")

    # Scenario 2: SIGKILL the busier triggerer while its triggers wait.
    victim_job, _ = max(Counter(peak.values()).items(), key=lambda kv: kv[1])
    victim = names[victim_job]  # type: ignore[index]
    survivor = "triggerer-2" if victim == "triggerer-1" else "triggerer-1"
    orphans = {tid for tid, job in peak.items() if job == victim_job}
    orphan_rows = {idx for tid, _, task, idx in cluster.trigger_assignments(BACKFILL_DAG, run_id) if tid in orphans}
    heartbeat_age = _heartbeat_age(cluster, victim_job)  # type: ignore[arg-type]
    killed_at = ctx.registry.kill(victim)
    ctx.log(f"SIGKILLed {victim} (whole process tree) holding {len(orphans)} waiting triggers; "
            f"its last heartbeat was {heartbeat_age:.1f} s old")
    taken: dict[int, float] = {}
    vanished: set[int] = set()

    def taken_over() -> bool:
        rows = {tid: job for tid, job, _, _ in cluster.trigger_assignments(BACKFILL_DAG, run_id)}
        now = time.monotonic()
        for tid in orphans - set(taken) - vanished:
            if tid not in rows:  # nothing but a triggerer or a user should end a waiting trigger
                vanished.add(tid)
            elif rows[tid] is not None and rows[tid] != victim_job:
                taken[tid] = now - killed_at
        return set(taken) | vanished == orphans

    wait_for(taken_over, timeout=120, interval=0.25, what=f"{survivor} to take over {len(orphans)} triggers")
    check(not vanished, f"{len(vanished)} trigger(s) of the dead triggerer vanished instead of being taken over")
    ctx.log(f"{survivor} took over all {len(orphans)} triggers: first after {min(taken.values()):.1f} s, "
            f"last after {max(taken.values()):.1f} s")

    def run_done() -> str | None:
        cluster.check_alive("scheduler", survivor, "worker-1", "worker-2")
        state = cluster.run_state(BACKFILL_DAG, run_id)
        return state if state in ("success", "failed") else None

    final = wait_for(run_done, timeout=600, interval=2, what=f"run {run_id} to finish")
    tis = cluster.task_instances(BACKFILL_DAG, run_id)
    states = Counter((ti["task_id"], ti["state"]) for ti in tis)
    check(final == "success", f"run {run_id} ended {final}: {dict(states)}")
    for task in ("generate_video",):
        check(states[(task, "success")] == ctx.rows, f"{task}: expected {ctx.rows} successes, got {dict(states)}")
    retried = [f"{ti['task_id']}[{ti['map_index']}] try {ti['try_number']}" for ti in tis if ti["try_number"] != 1]

    posts = submits_of(admin, BACKFILL_DAG, run_id)
    per_row = Counter(_lineage(e).get("map_index") for e in posts)
    request_ids = {e["requestId"] for e in posts}
    cancels = calls_for(admin, "cancel", request_ids)
    jobs = {j["requestId"]: j["status"] for j in admin.jobs() if j["requestId"] in request_ids}
    check(len(posts) == ctx.rows and set(per_row.values()) == {1},
          f"expected exactly one POST per row ({ctx.rows}), got {len(posts)}: {dict(per_row)}")
    check(not cancels, f"{len(cancels)} job(s) cancelled during the failover")
    check(set(jobs.values()) == {"succeeded"}, f"emulator job statuses: {Counter(jobs.values())}")
    # Each trigger logs into its task's log folder, one file per triggerer job that ran it.
    logs = ctx.cluster.home / "logs" / f"dag_id={BACKFILL_DAG}" / f"run_id={run_id}" / "task_id=generate_video"
    survivor_job = cluster.triggerer_jobs[survivor]
    resumed = {idx for idx in orphan_rows
               if (logs / f"map_index={idx}" / f"attempt=1.log.trigger.{survivor_job}.log").exists()}
    check(resumed == orphan_rows, f"no trigger log of {survivor} for rows {sorted(orphan_rows - resumed)}")
    videos = list((ctx.video_dir / "asset_backfill").glob("*/*.mp4"))
    check(len(videos) == ctx.rows, f"expected {ctx.rows} saved videos, found {len(videos)}")
    polls = calls_for(admin, "status", request_ids)
    ctx.figures.update({
        "backfill_run": run_id,
        "backfill_wall_s": round(time.monotonic() - started, 1),
        "backfill_all_deferred_after_s": round(deferred_after, 1),
        "triggers_per_triggerer": dict(spread),
        "failover_victim": victim,
        "failover_triggers_taken_over": len(orphans),
        "takeover_first_s": round(min(taken.values()), 1),
        "takeover_all_s": round(max(taken.values()), 1),
        "victim_heartbeat_age_at_kill_s": round(heartbeat_age, 1),
        "backfill_posts": len(posts),
        "backfill_posts_per_row": f"{min(per_row.values())}..{max(per_row.values())} over {len(per_row)} rows",
        "backfill_cancels": len(cancels),
        "backfill_status_polls": len(polls),
        "backfill_tasks_retried": retried,
    })


def _heartbeat_age(cluster: AirflowCluster, job_id: int) -> float:
    rows = cluster.query("SELECT EXTRACT(EPOCH FROM (now() - latest_heartbeat)) FROM job WHERE id = %s", (job_id,))
    return float(rows[0][0]) if rows else float("nan")


# -- scenario 3 -------------------------------------------------------------------------------------

def _worker_running(ctx: Context, ti: dict[str, Any]) -> str | None:
    """Which Celery worker's process tree runs this task instance (by its pid, else its process title)."""
    pid, ti_id = ti.get("pid"), str(ti.get("id"))
    for name in ("worker-1", "worker-2"):
        for proc in ctx.registry.services[name].tree():
            try:
                if proc.pid == pid or ti_id in " ".join(proc.cmdline()):
                    return name
            except psutil.Error:
                continue
    return None


def worker_kill_resumes(ctx: Context) -> None:
    """Scenario 3 (see the module docstring).

    :param ctx: the shared context.
    """
    cluster, admin = ctx.cluster, ctx.admin
    token = f"worker-kill-{secrets.token_hex(4)}"
    # Long enough to outlive the kill, the heartbeat timeout and the retry: the retry must find it running.
    admin.set_next_jobs(prompt_contains=token, queued_seconds=5, processing_seconds=55)
    cluster.unpause(WORKER_DAG)
    run_id = cluster.trigger(WORKER_DAG, {"prompt": f"A lighthouse at dusk, waves below ({token})"})
    started = time.monotonic()
    submit = wait_for(lambda: submits_with(admin, token), timeout=180, what="the generation's POST")[0]
    request_id = submit["requestId"]
    # The id reaches the task state store between the POST's answer and the first status GET; a kill
    # inside that window (milliseconds) cannot be told apart from "never submitted" by any retry.
    wait_for(lambda: calls_for(admin, "status", {request_id}), timeout=60, what="the first status check")
    ti = cluster.api("GET", f"/dags/{WORKER_DAG}/dagRuns/{run_id}/taskInstances/generate_video")
    worker = wait_for(lambda: _worker_running(ctx, ti), timeout=10, what="the worker running the task")
    other = "worker-2" if worker == "worker-1" else "worker-1"
    killed_at = ctx.registry.kill(worker)
    ctx.log(f"{request_id} submitted by try {ti['try_number']} on {worker}; SIGKILLed {worker} "
            f"({time.monotonic() - started:.1f} s after the trigger)")

    seen: dict[str, float] = {}

    def finished() -> dict[str, Any] | None:
        cluster.check_alive("scheduler", other)
        current = cluster.api("GET", f"/dags/{WORKER_DAG}/dagRuns/{run_id}/taskInstances/generate_video")
        if current["try_number"] == 1 and current["state"] == "up_for_retry":
            seen.setdefault("failed", time.monotonic() - killed_at)
        if current["try_number"] >= 2 and current["state"] == "running":
            seen.setdefault("retry", time.monotonic() - killed_at)
        return current if current["state"] in FINISHED else None

    final = wait_for(finished, timeout=300, interval=1, what="the retried task to finish")
    recovered = time.monotonic() - killed_at
    posts = submits_with(admin, token)
    cancels = calls_for(admin, "cancel", {request_id})
    job = admin.job(request_id)
    output = cluster.api("GET", f"/dags/{WORKER_DAG}/dagRuns/{run_id}/taskInstances/generate_video/xcomEntries/"
                         "return_value", params={"deserialize": "true"})["value"]
    retry_ran_on_other = str(final["id"]) in ctx.registry.services[other].log_path.read_text(errors="replace")
    ctx.log(f"task {final['state']} at try {final['try_number']} {recovered:.1f} s after the kill; "
            f"POSTs for it: {len(posts)}; job {job['status']}")
    check(final["state"] == "success", f"task ended {final['state']} (try {final['try_number']})")
    check(final["try_number"] >= 2, f"expected a retry, task finished at try {final['try_number']}")
    check(len(posts) == 1, f"expected 1 POST for the row, saw {len(posts)}: {[p['requestId'] for p in posts]}")
    check(not cancels, "the job was cancelled")
    check(job["status"] == "succeeded", f"emulator job is {job['status']}")
    check(isinstance(output, str) and request_id in output, f"task returned {output!r}, not {request_id}'s video")
    check(retry_ran_on_other, f"{other}'s log does not mention task instance {final['id']}")
    # More than one status check after the kill: the retry found the job still running and waited for it.
    killed_wall = time.time() - (time.monotonic() - killed_at)  # the emulator logs wall-clock times
    polls_after = [e for e in calls_for(admin, "status", {request_id}) if e["time"] > killed_wall]
    check(len(polls_after) >= 2, f"the retry polled {len(polls_after)} time(s): it did not resume a running job")
    ctx.figures.update({
        "worker_kill_victim": worker,
        "worker_kill_request_id": request_id,
        "worker_kill_posts_for_row": len(posts),
        "worker_kill_final_try": final["try_number"],
        "worker_kill_polls_after_kill": len(polls_after),
        "worker_kill_detected_after_s": round(seen.get("failed", float("nan")), 1),
        "worker_kill_retry_running_after_s": round(seen.get("retry", float("nan")), 1),
        "worker_kill_recovered_after_s": round(recovered, 1),
    })


# -- scenario 4 -------------------------------------------------------------------------------------

def mark_failed_cancels(ctx: Context) -> None:
    """Scenario 4 (see the module docstring).

    :param ctx: the shared context.
    """
    cluster, admin = ctx.cluster, ctx.admin
    token = f"mark-failed-{secrets.token_hex(4)}"
    admin.set_next_jobs(prompt_contains=token, never_finishes=True)
    cluster.unpause(DEFERRED_DAG)
    run_id = cluster.trigger(DEFERRED_DAG, {"prompt": f"A hot-air balloon over hills at sunrise ({token})"})
    request_id = wait_for(lambda: submits_with(admin, token), timeout=180, what="the generation's POST")[0]["requestId"]
    path = f"/dags/{DEFERRED_DAG}/dagRuns/{run_id}/taskInstances/generate_video"

    def waiting_in_triggerer() -> bool:
        rows = cluster.trigger_assignments(DEFERRED_DAG, run_id)
        # Two status GETs: the operator's check after submit, then the trigger's first poll.
        return (cluster.api("GET", path)["state"] == "deferred" and bool(rows) and rows[0][1] is not None
                and len(calls_for(admin, "status", {request_id})) >= 2)

    wait_for(waiting_in_triggerer, timeout=120, what="the task deferred and its trigger polling")
    marked_at = time.monotonic()
    cluster.api("PATCH", path, json={"new_state": "failed"})
    cancels = wait_for(lambda: calls_for(admin, "cancel", {request_id}), timeout=90,
                       what="the cancel at the emulator after marking the task failed")
    delay = time.monotonic() - marked_at
    time.sleep(2)  # a second cancel would show up within this
    cancels = calls_for(admin, "cancel", {request_id})
    job = admin.job(request_id)
    state = cluster.api("GET", path)["state"]
    ctx.log(f"{request_id} cancelled {delay:.1f} s after PATCH new_state=failed; task {state}; job {job['status']}")
    check(len(cancels) == 1 and cancels[0]["status"] == 200, f"expected one accepted cancel, got {cancels}")
    check(job["status"] == "cancelled", f"emulator job is {job['status']}")
    check(state == "failed", f"task is {state}")
    logs = ctx.cluster.home / "logs" / f"dag_id={DEFERRED_DAG}" / f"run_id={run_id}" / "task_id=generate_video"
    trigger_log = "".join(p.read_text(errors="replace") for p in logs.glob("attempt=1.log.trigger.*.log"))
    check("invoking on_kill" in trigger_log, "the trigger log does not show on_kill being invoked")
    check(len(submits_with(admin, token)) == 1, "the job was submitted more than once")
    ctx.figures.update({"mark_failed_cancel_after_s": round(delay, 1), "mark_failed_request_id": request_id})
