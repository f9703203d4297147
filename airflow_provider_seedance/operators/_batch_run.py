"""The batch's event loop: keep the window full, one ``watch_job`` per job in flight, write every row back.

One coroutine submits (in key order, paced, within the window and ``max_credits``); each job in flight is
waited for by :func:`~airflow_provider_seedance.waiting.watch_job` (the provider's one poll loop and wait
decision) and then finished: its video saved (``persist_video`` in a thread, bounded) and its row written.
A job's end wakes the submitter at once, so the next row goes out within one poll of a slot freeing.
Ledger writes go through one thread, in order. Design: ``docs/guides/batch.rst``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from airflow_provider_seedance.errors import (
    SeedanceAmbiguousSubmitError,
    SeedanceAuthError,
    SeedanceConflictError,
    SeedanceConnectionError,
    SeedanceError,
    SeedanceInsufficientCreditsError,
    SeedanceRateLimitError,
    created_nothing,
)
from airflow_provider_seedance.models import JobStatus
from airflow_provider_seedance.operators._batch_ledger import (
    AMBIGUOUS,
    CANCELLED,
    FAILED,
    SUBMITTED,
    SUBMITTING,
    SUCCEEDED,
    TableLedger,
)
from airflow_provider_seedance.operators._batch_rows import PlannedRow
from airflow_provider_seedance.operators._batch_window import AdaptiveWindow, PacedClient, is_concurrency_refusal
from airflow_provider_seedance.polling import PollSchedule
from airflow_provider_seedance.waiting import EVENT_COMPLETED, JobEvent, JobWait, describe_result, watch_job

__all__ = ["BatchRun", "BatchSettings"]

#: Failures of a submit that every other row would meet too: the batch stops submitting (rows stay pending).
_STOPS_THE_BATCH = (SeedanceAuthError, SeedanceInsufficientCreditsError, SeedanceConnectionError)


@dataclass(frozen=True)
class BatchSettings:
    """What the loop needs of the operator's parameters (see :class:`SeedanceBatchGenerateOperator`)."""

    poll_interval: float
    max_poll_interval: float
    job_timeout: float | None
    max_credits: int | None
    resubmit_ambiguous: bool
    persist_concurrency: int
    persist_conn_id: str | None
    persist_max_bytes: int | None
    progress_interval: float


class BatchRun:
    """One execution of the batch over the rows this task holds.

    :param ledger: the table.
    :param client: the paced hook.
    :param rows: the claimed rows, planned (validated) in key order.
    :param window: the adaptive window.
    :param settings: the operator's settings.
    :param log: the task's logger.
    """

    def __init__(self, ledger: TableLedger, client: PacedClient, rows: Sequence[PlannedRow], window: AdaptiveWindow,
                 settings: BatchSettings, log: Any) -> None:
        self.ledger, self.client, self.window, self.settings, self.log = ledger, client, window, settings, log
        self.rows = list(rows)
        self.queue: deque[PlannedRow] = deque()
        self.in_flight: dict[Any, str] = {}  # row key -> request id at the vendor (on_kill cancels these)
        self.counts = dict.fromkeys(("submitted", "reattached", "succeeded", "failed", "ambiguous", "cancelled",
                                     "refused_429", "lost_claim"), 0)
        self.credits_charged = 0
        self.stopped: str | None = None
        self.fatal: BaseException | None = None
        self.killed = False
        self._paused_until = 0.0
        self._slot_pause = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seedance-batch-ledger")
        self._started = time.monotonic()
        self._persist: asyncio.Semaphore | None = None

    # -- the loop ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Work every row: re-attach the ones with a job, submit the rest, until done, stopped or killed."""
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        self._persist = asyncio.Semaphore(self.settings.persist_concurrency)
        progress, keep = asyncio.create_task(self._progress()), asyncio.create_task(self._keep_claims())
        try:
            await self._sort_rows()
            while not self.killed:
                await self._fill()
                if not self._tasks and (self.stopped or not self.queue):
                    break
                self._wake.clear()
                pause = self._paused_until - time.monotonic()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=pause if pause > 0 else None)
                except asyncio.TimeoutError:
                    pass
        finally:
            progress.cancel()
            keep.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self.log_progress("final")
        if self.fatal is not None:
            raise self.fatal

    async def _db(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._writer, partial(call, *args, **kwargs))

    def close(self) -> None:
        """Stop the ledger's writer thread (after the loop ended)."""
        self._writer.shutdown(wait=True)

    def _stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason
            self.log.warning("Seedance batch: no more submits: %s", reason)

    async def _sort_rows(self) -> None:
        for planned in self.rows:
            row = planned.row
            if row.request_id and row.status in (SUBMITTED, SUBMITTING):
                if row.digest in (None, planned.digest):
                    self.counts["reattached"] += 1
                    self._start(planned, row.request_id, time.time())
                    continue
                await self._drop_changed(planned, row.request_id)
            elif row.status == SUBMITTING and row.digest == planned.digest and not self.settings.resubmit_ambiguous:
                await self._ambiguous(planned, "its submit was interrupted before the request id came back (a crash "
                                      "mid-POST): a job may exist and be charged")
                continue
            elif row.status in (SUBMITTING, AMBIGUOUS):
                self.log.warning("Row %r: submitting again (resubmit_ambiguous=True or its request changed): the "
                                 "job of the interrupted submit, if it exists, is paid for too", planned.key)
            self.queue.append(planned)
        self.log.info("Seedance batch: %d rows held, %d re-attached to their jobs, %d to submit (window %d)",
                      len(self.rows), self.counts["reattached"], len(self.queue), self.window.limit)

    async def _drop_changed(self, planned: PlannedRow, request_id: str) -> None:
        self.log.warning("Row %r: its job %s was submitted for a different request (the row or template changed): "
                         "cancelling it if still running and submitting the request as it is now", planned.key,
                         request_id)
        try:
            await self.client.acancel_job(request_id)
        except SeedanceConflictError:
            pass  # already finished
        except SeedanceError as exc:
            self.log.warning("Could not cancel Seedance generation %s (%s); it may run to its end", request_id, exc)

    async def _ambiguous(self, planned: PlannedRow, why: str) -> None:
        self.counts["ambiguous"] += 1
        await self._db(self.ledger.mark_outcome, planned.key, AMBIGUOUS,
                       error=f"ambiguous: {why}. Not submitted again (resubmit_ambiguous=False): check the vendor's "
                       "dashboard, then clear this row's status to generate it")

    # -- submitting ----------------------------------------------------------------------------------------------

    def _over_budget(self, planned: PlannedRow) -> str | None:
        cap = self.settings.max_credits
        if cap is None:
            return None
        if planned.estimate is None:
            return f"max_credits={cap} is set but the price of row {planned.key!r} is unknown"
        if self.credits_charged + planned.estimate > cap:
            return (f"max_credits={cap}: {self.credits_charged} credits charged, the next row ({planned.key!r}) "
                    f"would add about {planned.estimate}")
        return None

    async def _fill(self) -> None:
        while (self.queue and not self.stopped and not self.killed and len(self.in_flight) < self.window.limit
               and time.monotonic() >= self._paused_until):
            planned = self.queue[0]
            over = self._over_budget(planned)
            if over is not None:
                self._stop(over + "; the remaining rows stay pending")
                return
            self.queue.popleft()
            if not await self._db(self.ledger.mark_submitting, planned.key, planned.digest):
                self.counts["lost_claim"] += 1  # another run took the row over: it is theirs now
                continue
            try:
                result = await self.client.asubmit(planned.request)
            except SeedanceRateLimitError as exc:
                await self._refused(planned, exc)
                return
            except SeedanceAmbiguousSubmitError as exc:
                await self._ambiguous(planned, f"the submit failed after it may have reached Seedance ({exc.cause})")
                continue
            except _STOPS_THE_BATCH as exc:
                await self._db(self.ledger.mark_pending, planned.key)
                self.queue.appendleft(planned)
                self.fatal = exc
                self._stop(f"{type(exc).__name__}: {exc}")
                return
            except SeedanceError as exc:
                if not created_nothing(exc):  # the same rule as the operator's: a job may exist
                    await self._ambiguous(planned, f"the submit's answer does not say whether a job was created "
                                                   f"({type(exc).__name__}: {exc})")
                    continue
                self.counts["failed"] += 1  # the vendor refused this row's request: nothing was created
                await self._db(self.ledger.mark_outcome, planned.key, FAILED, error=f"submit refused: {exc}")
                continue
            await self._submitted(planned, result.request_id, result.credits_charged)

    async def _refused(self, planned: PlannedRow, exc: SeedanceRateLimitError) -> None:
        # 429 at submit: nothing was created or charged. The row goes back; the window learns the limit.
        self.counts["refused_429"] += 1
        await self._db(self.ledger.mark_pending, planned.key)
        self.queue.appendleft(planned)
        wait = exc.retry_after if exc.retry_after is not None else 1.0
        if is_concurrency_refusal(exc):
            self.window.refused(len(self.in_flight))
            self._slot_pause = True  # one of our jobs ending frees a slot sooner than Retry-After says
        self._paused_until = time.monotonic() + wait
        self.log.info("Seedance refused a submit (429, %s): %d jobs in flight, window now %d; next submit in at "
                      "most %.1f s", exc.code or "rate limit", len(self.in_flight), self.window.limit, wait)

    async def _submitted(self, planned: PlannedRow, request_id: str, charged: int | None) -> None:
        self.in_flight[planned.key] = request_id
        self.counts["submitted"] += 1
        self.credits_charged += charged if charged is not None else (planned.estimate or 0)
        try:
            # The id is in the table before anything else happens: a retry re-attaches, never pays again.
            await self._db(self.ledger.mark_submitted, planned.key, request_id, charged)
        except Exception:
            self.log.exception("Could not record Seedance generation %s of row %r; cancelling it", request_id,
                               planned.key)
            await self._cancel_quietly(request_id)
            self.in_flight.pop(planned.key, None)
            raise
        self.window.accepted()
        if self.killed:  # on_kill ran while this POST was on its way
            await self._cancel_quietly(request_id)
            await self._db(self.ledger.mark_cancelled, planned.key, request_id)
            return
        self._start(planned, request_id, time.time())

    async def _cancel_quietly(self, request_id: str) -> None:
        try:
            await self.client.acancel_job(request_id)
        except SeedanceError as exc:
            self.log.warning("Could not cancel Seedance generation %s: %s", request_id, exc)

    # -- waiting and finishing --------------------------------------------------------------------------------

    def _start(self, planned: PlannedRow, request_id: str, started_at: float) -> None:
        self.in_flight[planned.key] = request_id
        task = asyncio.create_task(self._track(planned, request_id, started_at))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self.fatal is None:
            self.fatal = task.exception()
            self._stop(f"finishing a row failed: {type(self.fatal).__name__}: {self.fatal}")
        if self._wake is not None:
            self._wake.set()

    async def _track(self, planned: PlannedRow, request_id: str, started_at: float) -> None:
        s = self.settings
        schedule = PollSchedule(initial=s.poll_interval, maximum=s.max_poll_interval)
        deadline = started_at + s.job_timeout if s.job_timeout is not None else None
        event = await watch_job(self.client, JobWait(request_id, started_at, deadline, schedule), owns_job=True,
                                log=self.log)
        # Not in a finally: a job whose wait was cancelled (kill, timeout) stays in flight for on_kill to cancel.
        self.in_flight.pop(planned.key, None)
        if self._slot_pause:
            self._slot_pause, self._paused_until = False, 0.0
        assert self._wake is not None
        self._wake.set()
        if not self.killed:
            await self._finish(planned, event)

    async def _finish(self, planned: PlannedRow, event: JobEvent) -> None:
        result = event.result
        if event.event != EVENT_COMPLETED or result is None:
            # The deadline passed (the job was cancelled) or the status check failed for good (the row keeps its
            # job: a later run re-attaches, it never pays again).
            self.counts["failed"] += 1
            status = FAILED if event.event != "error" else SUBMITTED
            await self._db(self.ledger.mark_outcome, planned.key, status, error=event.message)
            return
        if result.status is not JobStatus.SUCCEEDED or not result.output_url:
            self.counts["cancelled" if result.status is JobStatus.CANCELLED else "failed"] += 1
            status = CANCELLED if result.status is JobStatus.CANCELLED else FAILED
            await self._db(self.ledger.mark_outcome, planned.key, status, error=describe_result(result),
                           credits=result.credits_charged)
            return
        uri = result.output_url
        if planned.destination is not None:
            try:
                uri = await self._save(result.output_url, planned.destination)
            except SeedanceError as exc:
                # The row keeps its job (status submitted): the next run saves the same video, paying nothing.
                self.counts["failed"] += 1
                await self._db(self.ledger.mark_outcome, planned.key, SUBMITTED,
                               error=f"{describe_result(result)}, but saving it failed: {exc}")
                return
        self.counts["succeeded"] += 1
        await self._db(self.ledger.mark_outcome, planned.key, SUCCEEDED, video_uri=uri,
                       credits=result.credits_charged)

    async def _save(self, url: str, destination: str) -> str:
        from airflow_provider_seedance.persist import DEFAULT_MAX_BYTES, persist_video

        s = self.settings
        assert self._persist is not None
        async with self._persist:  # blocking I/O: threads, a few at a time
            uri: str = await asyncio.to_thread(
                persist_video, url, destination, conn_id=s.persist_conn_id,
                max_bytes=s.persist_max_bytes or DEFAULT_MAX_BYTES, field="destination")
        return uri

    # -- seeing it run, and stopping it ----------------------------------------------------------------------------

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(self.settings.progress_interval)
            self.log_progress("progress")

    async def _keep_claims(self) -> None:
        # Touched well within claim_timeout: only a dead run's claims go idle long enough to be taken over.
        while self.ledger.claim_timeout is not None:
            await asyncio.sleep(self.ledger.claim_timeout / 4)
            try:
                await self._db(self.ledger.touch)
            except Exception as exc:
                self.log.warning("Could not refresh this batch's claims (claim_timeout): %s", exc)

    def log_progress(self, label: str) -> None:
        """One line: done, in flight, pending, failed, ambiguous, rate, credits, ETA.

        :param label: ``progress`` or ``final``.
        """
        elapsed = max(time.monotonic() - self._started, 1e-6)
        done = self.counts["succeeded"]
        rate = done / elapsed * 60
        left = len(self.queue) + len(self.in_flight)
        eta = f"{left / (rate / 60):.0f} s" if rate > 0 and not self.stopped else "n/a"
        self.log.info("Seedance batch %s: %d done, %d in flight, %d pending, %d failed, %d ambiguous, %.1f videos/min, "
                      "%d credits, window %d, ETA %s", label, done, len(self.in_flight), len(self.queue),
                      self.counts["failed"], self.counts["ambiguous"], rate, self.credits_charged, self.window.limit,
                      eta)

    def kill(self, cancel: Callable[[str], Any]) -> None:
        """Cancel every job in flight and write its row ``cancelled`` (sync: called by on_kill).

        :param cancel: the hook's sync ``cancel_job``.
        """
        self.killed = True
        self._stop("the task was killed")
        for key, request_id in list(self.in_flight.items()):
            try:
                cancel(request_id)
            except SeedanceConflictError:
                continue  # it had already finished: a later run re-attaches and delivers it
            except SeedanceError as exc:
                self.log.warning("Could not cancel Seedance generation %s of row %r: %s", request_id, key, exc)
                continue
            self.in_flight.pop(key, None)
            self.counts["cancelled"] += 1
            self.ledger.mark_cancelled(key, request_id)
        if self._loop is not None and self._wake is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    def summary(self) -> dict[str, Any]:
        """Counts, credits, window and wall time of this execution."""
        return {**self.counts, "rows": len(self.rows), "pending": len(self.queue), "in_flight": len(self.in_flight),
                "credits_charged": self.credits_charged, "window": self.window.limit,
                "refused_submits_window": self.window.refusals, "requests": self.client.limiter.requests,
                "stopped": self.stopped, "wall_seconds": round(time.monotonic() - self._started, 3)}
