"""SeedanceBatchGenerateOperator: one task generates the videos of many rows of an asset table.

The table is the ledger (:mod:`._batch_ledger`): rows are claimed atomically, each row is marked
``submitting`` before its POST and gets its request id the moment the POST returns, so a retry, a re-run or
another shard re-attaches to jobs already paid for and never submits them again. One asyncio loop in the
worker (:mod:`._batch_run`) keeps up to ``max_in_flight`` jobs at the vendor (an adaptive window that learns
the account's limit from 429s, :mod:`._batch_window`), waits for each with the provider's one poll loop
(:func:`~airflow_provider_seedance.waiting.watch_job`), saves each video and writes each row back as it
ends. When to use it rather than mapped per-row tasks: ``docs/guides/batch.rst``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook, BaseOperator

from airflow_provider_seedance._numbers import positive_seconds
from airflow_provider_seedance.errors import SeedanceError
from airflow_provider_seedance.operators._batch_ledger import (
    AMBIGUOUS,
    CANCELLED,
    DEFAULT_RESULT_COLUMNS,
    PENDING,
    SUBMITTED,
    SUBMITTING,
    TableLedger,
)
from airflow_provider_seedance.operators._batch_rows import (
    PlannedRow,
    RowPlanner,
    SeedanceBatchInputError,
    check_request_mapping,
    check_unique_destinations,
    shard_of,
)
from airflow_provider_seedance.operators._batch_run import BatchRun, BatchSettings
from airflow_provider_seedance.operators._batch_window import AdaptiveWindow, PacedClient, RateLimiter

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_seedance.hooks.seedance import SeedanceHook

__all__ = ["SeedanceBatchGenerateOperator", "SeedanceBatchInputError"]

#: Rows a dry run names in its return value (all of them are logged).
_DRY_RUN_KEYS_SHOWN = 1000


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return value


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", "", "none"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


class SeedanceBatchGenerateOperator(BaseOperator):
    """Generate one video per pending row of an asset table, keeping the vendor's slots full, in one task.

    Returns the summary (counts, credits, window, wall time). Needs the result columns in the table (names
    in ``result_columns``; the guide has a ``CREATE TABLE``).

    :param conn_id: the asset database's Airflow connection (any common.sql hook: SQLite, PostgreSQL...).
    :param table: the asset table (``schema.table`` allowed). Templated.
    :param key_column: the column naming one row (unique).
    :param request_columns: request field -> column, e.g. ``{"prompt": "prompt", "media_urls": "image_url"}``.
    :param request_template: request field -> per-row Jinja template (``row`` is the row's columns, beside the
        task's context) or a constant, e.g. ``{"model": "seedance-2.0", "prompt": "{{ row.title }}, studio"}``.
    :param result_columns: result column role -> column name, for the roles whose names differ from
        ``DEFAULT_RESULT_COLUMNS`` (the names in the guide).
    :param where: SQL condition choosing the rows (trusted SQL, written by the DAG author). Templated.
    :param destination: per-row Jinja template of the file each video is saved to (any Airflow object storage
        URI or local path), e.g. ``"s3://bucket/videos/{{ row.sku }}.mp4"``; None writes the vendor's
        (expiring) URL back instead.
    :param seedance_conn_id: the Seedance connection.
    :param max_in_flight: most jobs at the vendor at once (over all shards); the window adapts below it.
    :param requests_per_second: most API requests a second (submits and polls together, over all shards).
    :param poll_interval: first poll interval of each job, seconds.
    :param max_poll_interval: cap of the poll interval (5 s by default: a late poll idles a slot).
    :param job_timeout: longest wait for one job (seconds or timedelta; cancelled at its deadline).
    :param max_credits: stop submitting when the next row's estimate would pass this many credits. Templated.
    :param max_rows: most rows this task takes on (None: all).
    :param resubmit_ambiguous: submit again a row whose earlier submit may have created a job whose id never
        came back (pays twice when it had). Default False: such rows are reported, not submitted.
    :param resubmit_statuses: ended statuses submitted again on a re-run (default: rows cancelled by a kill).
    :param shard_index: this task's shard (map it with ``expand``), ``0 <= shard_index < shard_count``.
    :param shard_count: how many tasks split the table (rows by a hash of the key).
    :param dry_run: only list what would be submitted (rows, credits, drain time); nothing is written or spent.
        Templated (``"{{ params.dry_run }}"``: ``true``/``false`` strings are read as booleans).
    :param expected_job_seconds: a job's duration, for the dry run's drain time estimate.
    :param persist_concurrency: videos saved at once.
    :param persist_conn_id: connection of the destination store, when not in the URI.
    :param persist_max_bytes: refuse to save a larger video (None: the helper's 2 GiB).
    :param progress_interval: seconds between progress log lines.
    :param fail_on_row_errors: fail the task at the end when a row failed or became ambiguous.
    :param claim_timeout: how long another run's claim may sit idle (seconds or timedelta; a live run refreshes
        its claims every quarter of it) before this task takes the row over: a row with a request id is
        re-attached, one left ``submitting`` without an id is ambiguous. None: never. Default 6 hours.
    """

    template_fields: Sequence[str] = ("table", "where", "max_credits", "dry_run_only")
    ui_color = "#f2e8ff"

    def __init__(
        self,
        *,
        conn_id: str,
        table: str,
        key_column: str,
        request_columns: Mapping[str, str] | None = None,
        request_template: Mapping[str, Any] | None = None,
        result_columns: Mapping[str, str] | None = None,
        where: str | None = None,
        destination: str | None = None,
        seedance_conn_id: str = "seedance_default",
        max_in_flight: int = 32,
        requests_per_second: float | None = 10.0,
        poll_interval: float = 5.0,
        max_poll_interval: float = 5.0,
        job_timeout: float | timedelta | None = timedelta(hours=1),
        max_credits: int | str | None = None,
        max_rows: int | None = None,
        resubmit_ambiguous: bool = False,
        resubmit_statuses: Sequence[str] = (CANCELLED,),
        shard_index: int = 0,
        shard_count: int = 1,
        dry_run: bool | str = False,
        expected_job_seconds: float = 120.0,
        persist_concurrency: int = 4,
        persist_conn_id: str | None = None,
        persist_max_bytes: int | None = None,
        progress_interval: float = 60.0,
        fail_on_row_errors: bool = False,
        claim_timeout: float | timedelta | None = timedelta(hours=6),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_request_mapping(request_columns, request_template)
        unknown = sorted(set(result_columns or {}) - set(DEFAULT_RESULT_COLUMNS))
        if unknown:
            raise ValueError(f"result_columns has unknown role(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(DEFAULT_RESULT_COLUMNS)}")
        self.conn_id, self.table, self.key_column = conn_id, table, key_column
        self.request_columns, self.request_template = dict(request_columns or {}), dict(request_template or {})
        self.result_columns = {**DEFAULT_RESULT_COLUMNS, **(result_columns or {})}
        self.where, self.destination, self.seedance_conn_id = where, destination, seedance_conn_id
        self.max_in_flight = _positive_int("max_in_flight", max_in_flight)
        self.requests_per_second = positive_seconds("requests_per_second", requests_per_second, allow_none=True)
        self.poll_interval = positive_seconds("poll_interval", poll_interval)
        self.max_poll_interval = positive_seconds("max_poll_interval", max_poll_interval)
        self.job_timeout = positive_seconds("job_timeout", job_timeout, allow_none=True)
        self.max_credits = max_credits
        self.max_rows = None if max_rows is None else _positive_int("max_rows", max_rows)
        self.resubmit_ambiguous = resubmit_ambiguous
        self.resubmit_statuses = tuple(resubmit_statuses)
        self.shard_count = _positive_int("shard_count", shard_count)
        if isinstance(shard_index, bool) or not isinstance(shard_index, int) or not 0 <= shard_index < shard_count:
            raise ValueError(f"shard_index must be a whole number from 0 to shard_count - 1 = {shard_count - 1}, "
                             f"got {shard_index!r}")
        self.shard_index = shard_index
        # Not ``self.dry_run``: that is a BaseOperator method.
        self.dry_run_only = dry_run
        self.expected_job_seconds = positive_seconds("expected_job_seconds", expected_job_seconds)
        self.persist_concurrency = _positive_int("persist_concurrency", persist_concurrency)
        self.persist_conn_id, self.persist_max_bytes = persist_conn_id, persist_max_bytes
        self.progress_interval = positive_seconds("progress_interval", progress_interval)
        self.fail_on_row_errors = fail_on_row_errors
        self.claim_timeout = positive_seconds("claim_timeout", claim_timeout, allow_none=True)
        self._run: BatchRun | None = None
        self._hook: SeedanceHook | None = None
        self._lineage_facts: dict[str, Any] = {}

    # -- what this task works on -------------------------------------------------------------------------

    def _owner(self, context: Context) -> str:
        # Stable over the task's retries (never the try number): a retry takes back its own rows.
        ti = context["ti"]
        return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"

    def _statuses(self) -> list[str]:
        statuses = [PENDING, SUBMITTING, SUBMITTED, *self.resubmit_statuses]
        return statuses + ([AMBIGUOUS] if self.resubmit_ambiguous else [])

    def _max_credits(self) -> int | None:
        value = self.max_credits
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            credits = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"max_credits must be a whole number of credits, got {value!r}") from None
        if credits < 0 or isinstance(value, bool):
            raise ValueError(f"max_credits must be a whole number of credits >= 0, got {value!r}")
        return credits

    def _share(self, total: float) -> float:
        return total / self.shard_count

    def execute(self, context: Context) -> dict[str, Any]:
        """Claim this shard's pending rows, plan and validate each, then run the batch; return the summary.

        :param context: the task's context.
        """
        from airflow_provider_seedance.hooks.seedance import SeedanceHook

        max_credits = self._max_credits()
        db = BaseHook.get_hook(self.conn_id)
        self._name_table_for_lineage(db)
        ledger = TableLedger(db, self.table, self.key_column, self.result_columns,
                             self.where, self._owner(context), self.claim_timeout)
        ledger.check_schema(self.request_columns.values())
        # No retries inside the hook: every request passes the batch's rate limit, a 429 comes back at once (the
        # window learns from it) and the poll loop sits out a failed status check on its own schedule.
        hook = SeedanceHook(seedance_conn_id=self.seedance_conn_id, max_retries=0)
        planner = RowPlanner(hook, self.get_template_env(), context, self.request_columns, self.request_template,
                             self.destination, self.key_column, {"table": self.table, "owner": ledger.owner})
        statuses = self._statuses()
        mine = [r.key for r in ledger.candidates(statuses) if shard_of(r.key, self.shard_count) == self.shard_index]
        keys = mine[: self.max_rows] if self.max_rows is not None else mine
        cap = max(1, math.ceil(self._share(self.max_in_flight)))
        if _flag("dry_run", self.dry_run_only):
            rows = [r for r in ledger.candidates(statuses) if r.key in set(keys)]
            return self._dry_run([planner.plan(r) for r in rows], cap, max_credits)
        held = ledger.claim(keys, statuses)
        try:
            planned = [planner.plan(row) for row in held]
            check_unique_destinations(planned, self.key_column)
        except BaseException:
            ledger.release()  # refused before any POST: hand the rows back untouched
            raise
        rps = self._share(self.requests_per_second) if self.requests_per_second is not None else None
        settings = BatchSettings(self.poll_interval, self.max_poll_interval, self.job_timeout, max_credits,
                                 self.resubmit_ambiguous, self.persist_concurrency, self.persist_conn_id,
                                 self.persist_max_bytes, self.progress_interval)
        run = BatchRun(ledger, PacedClient(hook, RateLimiter(rps)), planned, AdaptiveWindow(cap), settings, self.log)
        self._run, self._hook = run, hook
        try:
            asyncio.run(self._main(run, hook))
        finally:
            self._lineage_facts["credits_charged"] = run.credits_charged
            run.close()
            ledger.release()  # rows keep their status and request id: the next run re-attaches
        summary = {**run.summary(), "table": ledger.count_by_status(),
                   "shard": f"{self.shard_index}/{self.shard_count}"}
        self.log.info("Seedance batch summary: %s", summary)
        if run.killed:
            raise SeedanceError(f"the Seedance batch was stopped: the task was killed ({summary['cancelled']} jobs "
                                "cancelled and their rows written 'cancelled')")
        if self.fail_on_row_errors and (summary["failed"] or summary["ambiguous"]):
            raise SeedanceError(f"{summary['failed']} rows failed and {summary['ambiguous']} are ambiguous (see "
                                f"their error column); summary: {summary}")
        return summary

    @staticmethod
    async def _main(run: BatchRun, hook: SeedanceHook) -> None:
        try:
            await run.run()
        finally:
            await hook.aclose()

    def _dry_run(self, planned: list[PlannedRow], cap: int, max_credits: int | None) -> dict[str, Any]:
        check_unique_destinations(planned, self.key_column)
        attach = [p for p in planned if p.row.request_id and p.row.status in (SUBMITTED, SUBMITTING)
                  and p.row.digest in (None, p.digest)]
        stuck = [p for p in planned if p.row.status == SUBMITTING and not p.row.request_id
                 and p.row.digest == p.digest and not self.resubmit_ambiguous]
        submit = [p for p in planned if p not in attach and p not in stuck]
        estimates = [p.estimate for p in submit]
        credits = None if any(e is None for e in estimates) else sum(e for e in estimates if e is not None)
        for p in submit:
            self.log.info("Dry run: would submit row %r: %s %ss %s, about %s credits%s", p.key, p.request.model,
                          p.request.duration or "default ", p.request.resolution or "default", p.estimate,
                          f", saved to {p.destination}" if p.destination else "")
        waves = math.ceil((len(submit) + len(attach)) / cap) if submit or attach else 0
        summary = {
            "dry_run": True, "would_submit": len(submit), "would_reattach": len(attach), "ambiguous": len(stuck),
            "credits_estimated": credits, "max_credits": max_credits,
            "within_max_credits": None if max_credits is None or credits is None else credits <= max_credits,
            "window": cap, "estimated_drain_seconds": waves * self.expected_job_seconds,
            "keys": [p.key for p in submit][:_DRY_RUN_KEYS_SHOWN],
        }
        self.log.info("Seedance batch dry run (nothing written, nothing spent): %s", summary)
        return summary

    def _name_table_for_lineage(self, db: Any) -> None:
        try:
            from airflow_provider_seedance.lineage.batch_lineage import table_dataset

            self._lineage_facts["table"] = table_dataset(db, BaseHook.get_connection(self.conn_id), self.table)
        except Exception:  # the OpenLineage provider is optional, and lineage never stops the batch
            self.log.debug("The batch's table is not named for OpenLineage", exc_info=True)

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """The asset table read (``docs/guides/batch.rst``, "Lineage")."""
        from airflow_provider_seedance.lineage.batch_lineage import batch_lineage

        return batch_lineage(self, None, "start")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """The table read and written back, the destinations' store, the credits charged.

        :param task_instance: the finished task instance (unused: the facts come from this process).
        """
        from airflow_provider_seedance.lineage.batch_lineage import batch_lineage

        return batch_lineage(self, task_instance, "complete")

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> OperatorLineage:
        """As on complete: rows finished before the failure were written back.

        :param task_instance: the failed task instance.
        """
        from airflow_provider_seedance.lineage.batch_lineage import batch_lineage

        return batch_lineage(self, task_instance, "failure")

    def on_kill(self) -> None:
        """Cancel the jobs in flight and write their rows ``cancelled`` (task killed or ``execution_timeout``)."""
        run, hook = self._run, self._hook
        if run is not None and hook is not None:
            run.kill(hook.cancel_job)
