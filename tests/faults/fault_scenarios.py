"""The fault matrix: every scenario, how it is provoked at the emulator, and what must come out of it.

Shared by ``benchmarks/fault_matrix.py`` (prints the table, writes ``docs/fault-matrix.rst``) and
``tests/faults/test_fault_matrix.py`` (asserts every row). Pure Python: no Airflow import, so the table
can be read anywhere; the DAGs are built from it by ``fault_dags.py``.

Counting rules (what the columns of the report mean):

- **POSTs**: submit requests the emulator received from the task (refused ones included).
- **jobs**: generations the emulator created (and charged) for the task.
- **duplicates**: jobs beyond the first. Must be 0 unless the scenario opted in (``retry_ambiguous_submit``).
- **orphans**: jobs created whose request id the task never learnt (the answer was lost): charged, and
  no Airflow record points at them. Only a lost submit answer produces one; the task then fails without
  retry and says so, because a retry would pay again.
- **left running**: jobs still queued/processing once the run ended and the emulator's normal job
  lifetime (0.3 s here) has passed: a job nobody will finish or cancel. Must be 0.
- **requests**: every API request of the scenario (catalogue, submit, status, cancel), bounded by
  ``max_requests`` (the hook's policy here: 5 attempts per call, as by default, with waits of
  milliseconds instead of seconds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SCENARIOS", "Scenario", "check_row", "dag_id_of", "short_error"]

#: Every job of the matrix runs 0.1 s queued + 0.2 s processing unless the scenario says otherwise.
TIME_SCALE = 0.1
#: Connection ids the harness defines (see fault_harness.connections()).
CONN_DEFAULT = "seedance_default"
CONN_SHORT_TIMEOUT = "seedance_short_timeout"  # timeout extra 0.5 s
CONN_WRONG_KEY = "seedance_wrong_key"


@dataclass(frozen=True)
class Scenario:
    """One row of the fault matrix.

    :param name: short id (DAG id ``fault_<name>``).
    :param title: what goes wrong, as the report shows it.
    :param path: ``deferrable`` (operator + trigger), ``worker`` (operator polling in the worker),
        ``sensor`` (``SeedanceJobSensor`` on a job submitted by the harness) or ``engine`` (real scheduler).
    :param faults: ``EmulatorAdmin.add_fault`` specs armed before the run.
    :param next_jobs: ``EmulatorAdmin.set_next_jobs`` behaviours.
    :param configure: ``EmulatorAdmin.configure`` settings.
    :param conn_id: the Seedance connection of the task.
    :param operator_kwargs: extra operator (or sensor) arguments.
    :param faults_while_deferred: faults armed once the request id is known, while the task is deferred;
        ``request_id="{rid}"`` is replaced by the id (a request-scoped fault).
    :param restart_triggerer: stop the trigger mid-wait and re-create it from its serialized kwargs in a
        new event loop (what a triggerer restart does).
    :param expect_state: final task state.
    :param expect_error: a text the task's failure must contain (None: it must succeed).
    :param expect_posts: submit requests received.
    :param expect_jobs: jobs created.
    :param expect_duplicates: jobs beyond the first (only an opted-in scenario may have one).
    :param expect_orphans: jobs whose id the task never learnt.
    :param expect_cancels: cancel requests (None: not checked).
    :param expect_tries: the task's final try number.
    :param max_requests: upper bound of all API requests of the scenario.
    :param min_submit_gap: seconds every retried POST must have waited (a ``Retry-After`` honoured).
    :param opted_in: the user accepted possible duplicates (``retry_ambiguous_submit=True``).
    :param note: one line for the report.
    """

    name: str
    title: str
    path: str = "deferrable"
    faults: tuple[dict[str, Any], ...] = ()
    next_jobs: tuple[dict[str, Any], ...] = ()
    configure: dict[str, Any] = field(default_factory=dict)
    conn_id: str = CONN_DEFAULT
    operator_kwargs: dict[str, Any] = field(default_factory=dict)
    faults_while_deferred: tuple[dict[str, Any], ...] = ()
    restart_triggerer: bool = False
    expect_state: str = "success"
    expect_error: str | None = None
    expect_posts: int = 1
    expect_jobs: int = 1
    expect_duplicates: int = 0
    expect_orphans: int = 0
    expect_cancels: int | None = 0
    expect_tries: int = 1
    max_requests: int = 12
    min_submit_gap: float | None = None
    opted_in: bool = False
    note: str = ""


def dag_id_of(scenario: Scenario) -> str:
    """The DAG id of a scenario.

    :param scenario: the scenario.
    """
    return "fault_" + scenario.name.replace("-", "_")


def _http(endpoint: str, status: int, **kw: Any) -> dict[str, Any]:
    return {"kind": "http", "endpoint": endpoint, "status": status, **kw}


AMBIGUOUS = "SeedanceAmbiguousSubmitNoRetryError"
#: Ambiguous submits run with retries=1: the report shows Airflow did not retry them.
RETRY1: dict[str, Any] = {"retries": 1}
NEVER = {"never_finishes": True}
#: For faults the trigger must meet: the job is certainly still running when the task defers.
SLOW = ({"queued_seconds": 0.2, "processing_seconds": 1.0},)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("baseline-deferrable", "no fault (reference)", max_requests=8),
    Scenario("baseline-worker", "no fault (reference)", path="worker", max_requests=8),
    # -- 429 -------------------------------------------------------------------------------------------
    Scenario("429-submit-retry-after", "429 storm on submit, Retry-After: 1 (3 times)", path="worker",
             faults=(_http("submit", 429, retry_after="1", times=3),), expect_posts=4, max_requests=10,
             min_submit_gap=1.0, note="the hook waits what the server asked; nothing is created until accepted"),
    Scenario("429-submit-backoff", "429 storm on submit, no Retry-After (3 times)",
             faults=(_http("submit", 429, times=3),), expect_posts=4, max_requests=12),
    Scenario("429-submit-endless", "429 on every submit", path="worker",
             faults=(_http("submit", 429, retry_after="0", times=-1),), expect_state="failed",
             expect_error="SeedanceRateLimitError", expect_posts=5, expect_jobs=0, max_requests=6,
             note="5 attempts (the policy), then a clear failure; safe to retry: nothing was created"),
    Scenario("429-poll-retry-after", "429 storm on status, Retry-After: 1 (3 times)",
             faults=(_http("status", 429, retry_after="1", times=3, skip=1),), next_jobs=SLOW, max_requests=14,
             note="the trigger waits at least Retry-After between polls"),
    Scenario("429-poll-backoff", "429 storm on status, no Retry-After (3 times)", path="worker",
             faults=(_http("status", 429, times=3),), max_requests=14),
    # -- 5xx -------------------------------------------------------------------------------------------
    *(
        Scenario(f"{code}-submit", f"{code} on submit (retries=1)", path=path, operator_kwargs=RETRY1,
                 faults=(_http("submit", code),), expect_state="failed", expect_error=AMBIGUOUS,
                 expect_jobs=0, max_requests=3,
                 note="the POST may have created a job: not re-sent, task fails without Airflow retry")
        for code, path in ((500, "deferrable"), (502, "worker"), (503, "deferrable"))
    ),
    Scenario("503-submit-job-created", "503 on submit after the job was created (retries=1)", path="worker",
             operator_kwargs=RETRY1,
             faults=(_http("submit", 503, process=True),), expect_state="failed", expect_error=AMBIGUOUS,
             expect_orphans=1, max_requests=3,
             note="the charged job's id never arrived: reported, not paid twice"),
    *(
        Scenario(f"{code}-poll", f"{code} on status (3 times)", path=path,
                 faults=(_http("status", code, times=3, skip=1),), next_jobs=SLOW, max_requests=14)
        for code, path in ((500, "worker"), (502, "deferrable"), (503, "worker"))
    ),
    # -- broken connections and answers ----------------------------------------------------------------
    Scenario("reset-submit", "connection reset mid-response on submit (retries=1)", path="worker",
             operator_kwargs=RETRY1,
             faults=({"kind": "drop", "endpoint": "submit"},), expect_state="failed", expect_error=AMBIGUOUS,
             expect_orphans=1, max_requests=3),
    Scenario("reset-submit-opted-in", "connection reset on submit, retry_ambiguous_submit=True, retries=1",
             path="worker", faults=({"kind": "drop", "endpoint": "submit"},),
             operator_kwargs={"retry_ambiguous_submit": True, "retries": 1},
             expect_posts=2, expect_jobs=2, expect_duplicates=1, expect_orphans=1, expect_tries=2,
             max_requests=12, opted_in=True, note="the user opted in: the retry paid for a second job"),
    Scenario("reset-poll", "connection reset mid-response on status (2 times)",
             faults=({"kind": "drop", "endpoint": "status", "times": 2, "skip": 1},), next_jobs=SLOW,
             max_requests=12),
    Scenario("closed-poll", "connection closed without answer on status (2 times)", path="worker",
             faults=({"kind": "close", "endpoint": "status", "times": 2},), max_requests=12),
    Scenario("timeout-submit", "submit answer slower than the 0.5 s timeout (retries=1)", path="worker",
             operator_kwargs=RETRY1,
             conn_id=CONN_SHORT_TIMEOUT, faults=({"kind": "latency", "endpoint": "submit", "delay": 1.5},),
             expect_state="failed", expect_error=AMBIGUOUS, expect_jobs=0, max_requests=3,
             note="the emulator drops a request its client gave up on; a server that went on would leave an "
                  "orphan, as in the reset row"),
    Scenario("timeout-poll", "status answers slower than the 0.5 s timeout (2 times)",
             conn_id=CONN_SHORT_TIMEOUT,
             faults=({"kind": "latency", "endpoint": "status", "delay": 1.5, "times": 2, "skip": 1},),
             next_jobs=SLOW, max_requests=12),
    Scenario("timeout-poll-worker", "status answers slower than the 0.5 s timeout (2 times)", path="worker",
             conn_id=CONN_SHORT_TIMEOUT,
             faults=({"kind": "latency", "endpoint": "status", "delay": 1.5, "times": 2},),
             max_requests=12),
    Scenario("malformed-submit", "malformed JSON answer to submit (retries=1)", path="worker",
             operator_kwargs=RETRY1,
             faults=({"kind": "malformed", "endpoint": "submit"},), expect_state="failed", expect_error=AMBIGUOUS,
             expect_orphans=1, max_requests=3),
    Scenario("malformed-poll", "malformed JSON answer to status (2 times)",
             faults=({"kind": "malformed", "endpoint": "status", "times": 2, "skip": 1},), next_jobs=SLOW,
             max_requests=12),
    # -- permanent errors ------------------------------------------------------------------------------
    Scenario("401-submit", "401: the connection's key is rejected", path="worker", conn_id=CONN_WRONG_KEY,
             expect_state="failed", expect_error="Invalid API key", expect_jobs=0, max_requests=2),
    Scenario("401-poll", "401 on status while deferred (key revoked mid-wait)",
             faults=(_http("status", 401, skip=1, times=-1),), next_jobs=SLOW, expect_state="failed",
             expect_error="SeedanceAuthError", max_requests=6,
             note="one error event, no retry storm; the job is left to finish (a retry would resume it)"),
    Scenario("402-submit", "402: not enough credits", configure={"balance": 10}, expect_state="failed",
             expect_error="Insufficient credits", expect_jobs=0, max_requests=2),
    Scenario("404-known-id-deferred", "404 for the known request id while deferred",
             faults_while_deferred=(_http("status", 404, request_id="{rid}", times=-1),), next_jobs=SLOW,
             expect_state="failed",
             expect_error="SeedanceNotFoundError", max_requests=6),
    Scenario("404-known-id-sensor", "404 for the known request id (sensor)", path="sensor",
             faults=(_http("status", 404, request_id="{rid}", times=-1),), expect_state="failed",
             expect_error="SeedanceNotFoundError", expect_posts=0, expect_jobs=0, max_requests=2),
    Scenario("unknown-status", 'undocumented status "rendering", then success',
             next_jobs=({"status": "rendering", "queued_seconds": 0, "processing_seconds": 0.8},), max_requests=14,
             note="waited through, never taken for success"),
    Scenario("unknown-status-forever", 'undocumented status "rendering" forever -> deadline', path="worker",
             next_jobs=({"status": "rendering", **NEVER},), operator_kwargs={"timeout": 1.5},
             expect_state="failed", expect_error="did not finish before its deadline", expect_cancels=1,
             max_requests=14),
    # -- job outcomes -----------------------------------------------------------------------------------
    Scenario("never-finishes-deferred", "job never finishes -> deadline -> cancel", next_jobs=(NEVER,),
             operator_kwargs={"timeout": 1.5}, expect_state="failed", expect_error="it was cancelled",
             expect_cancels=1, max_requests=14),
    Scenario("never-finishes-worker", "job never finishes -> deadline -> cancel", path="worker",
             next_jobs=(NEVER,), operator_kwargs={"timeout": 1.5}, expect_state="failed",
             expect_error="it was cancelled", expect_cancels=1, max_requests=14),
    Scenario("failed-job", "the job fails at the vendor",
             next_jobs=({"fail_with": "content policy violation"},), expect_state="failed",
             expect_error="ended failed: generation_failed: content policy violation", max_requests=8),
    Scenario("no-output", "succeeded without an output URL", path="worker", next_jobs=({"no_output": True},),
             expect_state="failed", expect_error="returned no output URL", max_requests=8),
    Scenario("sensor-503-poll", "503 on status (3 times, sensor)", path="sensor",
             faults=(_http("status", 503, times=3),), expect_posts=0, expect_jobs=0, max_requests=12),
    # -- Airflow components dying ------------------------------------------------------------------------
    Scenario("triggerer-restart", "triggerer restarted mid-wait (trigger re-created from its kwargs)",
             next_jobs=({"queued_seconds": 0, "processing_seconds": 1.5},), restart_triggerer=True,
             max_requests=14, note="not cancelled, not resubmitted; the new trigger keeps the deadline"),
    Scenario("worker-killed-after-submit", "worker SIGKILLed right after the request id was saved (retries=1)",
             path="engine", expect_tries=2, max_requests=24,
             note="real scheduler + LocalExecutor: try 2 resumes the job, one POST across both tries"),
)


def short_error(text: str | None, base_url: str | None = None, limit: int = 110, cause: str | None = None) -> str:
    """A failure text made stable and short for the report: request ids and the emulator URL generalized.

    :param text: the failure (``Type: message``).
    :param base_url: the emulator's base URL.
    :param limit: characters kept.
    :param cause: the underlying failure of an ambiguous submit, shown instead of the long explanation.
    """
    if not text:
        return ""
    text = " ".join(text.split())
    if cause and "may have reached Seedance" in text:
        text = f"{text.split(':', 1)[0]}: not re-sent, not retried ({' '.join(cause.split())})"
    if base_url:
        text = text.replace(base_url, "{emulator}")
    text = re.sub(r"req_[0-9a-f]{6,}", "req_…", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", "<deadline>", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_row(scenario: Scenario, row: dict[str, Any]) -> list[str]:
    """Every way ``row`` (what happened) breaks ``scenario``'s expectations; empty when it holds.

    :param scenario: the scenario.
    :param row: the observed row (see ``fault_harness.observe``).
    """
    problems = []

    def expect(what: str, got: Any, want: Any) -> None:
        if got != want:
            problems.append(f"{what}: expected {want!r}, got {got!r}")

    expect("state", row["state"], scenario.expect_state)
    expect("tries", row["tries"], scenario.expect_tries)
    expect("POSTs", row["posts"], scenario.expect_posts)
    expect("jobs", row["jobs"], scenario.expect_jobs)
    expect("duplicates", row["duplicates"], scenario.expect_duplicates)
    expect("orphans", row["orphans"], scenario.expect_orphans)
    expect("left running", row["left_running"], 0)
    if row["duplicates"] and not scenario.opted_in:
        problems.append("a duplicate submission without the user's opt-in")
    if scenario.expect_cancels is not None:
        expect("cancels", row["cancels"], scenario.expect_cancels)
    if row["requests"] > scenario.max_requests:
        problems.append(f"requests: {row['requests']} > the bound {scenario.max_requests}")
    error = row.get("error") or ""
    if scenario.expect_error is None:
        if row.get("return_value") != row.get("output_url") or not row.get("output_url"):
            problems.append(f"no output URL handed back (return {row.get('return_value')!r})")
    elif scenario.expect_error not in error:
        problems.append(f"error text should contain {scenario.expect_error!r}: {error!r}")
    gap = row.get("min_submit_gap")
    if scenario.min_submit_gap is not None and gap is not None and gap < scenario.min_submit_gap:
        problems.append(f"a POST was retried {row['min_submit_gap']:.2f} s after the previous one, "
                            f"before the {scenario.min_submit_gap} s Retry-After")
    if scenario.restart_triggerer and (row.get("restarted_while") not in ("queued", "processing")
                                       or row.get("fired_before_restart")):
        problems.append(f"the triggerer was not restarted mid-wait (job {row.get('restarted_while')!r})")
    if scenario.restart_triggerer and not row.get("deadline_kept"):
        problems.append("the re-created trigger lost its deadline or start time")
    if any(key in error for key in row.get("secrets", ())):
        problems.append("the API key is in the error text")
    return problems
