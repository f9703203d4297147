"""The asset table as the batch's ledger: which rows to do, who holds them, and what became of each one.

Any common.sql ``DbApiHook`` (SQLite, PostgreSQL...): plain statements, the hook's placeholder, one short
transaction per statement. The rules that make it safe (``docs/guides/batch.rst``, "The table is the ledger"):

- A row is *claimed* (``claimed_by`` = the task's owner token, stable over retries) in one ``UPDATE`` that
  re-checks the row is free, so overlapping runs and shards never hold the same row.
- Before each POST the row is marked ``submitting`` with the request's digest; the request id is written the
  moment the POST returns. A row found ``submitting`` without an id is a POST whose answer was lost.
- Every write names the owner, so a row this task no longer holds is never overwritten.
- A claim idle for ``claim_timeout`` (its ``updated_at`` not touched: a live run touches its rows, a dead one
  cannot) may be taken over by another owner; what the dead run left is then worked by the usual rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import pendulum

from airflow_provider_seedance._redact import redact_text

__all__ = [
    "AMBIGUOUS",
    "CANCELLED",
    "DEFAULT_RESULT_COLUMNS",
    "FAILED",
    "INVALID",
    "PENDING",
    "SUBMITTED",
    "SUBMITTING",
    "SUCCEEDED",
    "LedgerRow",
    "TableLedger",
    "check_identifier",
]

PENDING = "pending"
SUBMITTING = "submitting"
SUBMITTED = "submitted"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
AMBIGUOUS = "ambiguous"
INVALID = "invalid"

#: Result column role -> default column name (the ``result_columns`` parameter renames any of them).
DEFAULT_RESULT_COLUMNS: Mapping[str, str] = {
    "status": "video_status",
    "request_id": "request_id",
    "video_uri": "video_uri",
    "credits": "credits_charged",
    "error": "video_error",
    "updated_at": "updated_at",
    "digest": "request_digest",
    "claimed_by": "claimed_by",
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_MAX_ERROR = 1000
_KEYS_PER_CLAIM = 500


def check_identifier(what: str, name: Any, *, dotted: bool = False) -> str:
    """A table or column name as it goes into SQL: letters, digits and ``_`` (``schema.table`` when dotted).

    :param what: the parameter, for the message.
    :param name: the name given.
    :param dotted: allow one ``schema.`` prefix.
    """
    parts = name.split(".") if isinstance(name, str) and dotted else [name]
    if not isinstance(name, str) or len(parts) > 2 or not all(_IDENTIFIER.match(p) for p in parts):
        allowed = "schema.table or table" if dotted else "a column name"
        raise ValueError(f"{what} must be {allowed} (letters, digits and _, not starting with a digit), got {name!r}")
    return name


def _now(seconds_ago: float = 0.0) -> str:
    # One fixed format (always microseconds, UTC): ISO strings then compare in time order, text or timestamp.
    return pendulum.now("UTC").subtract(seconds=seconds_ago).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class LedgerRow:
    """One row of the table as read: its key, every column (for the request's fields and templates), its state.

    :param key: the key column's value.
    :param values: column name -> value.
    :param status: the status column (None: never touched).
    :param request_id: the job an earlier run submitted, if any.
    :param digest: the digest of the request that job was submitted for.
    """

    key: Any
    values: Mapping[str, Any]
    status: str | None
    request_id: str | None
    digest: str | None


class TableLedger:
    """Reads, claims and writes back the rows of one table for one owner.

    :param db: a common.sql ``DbApiHook``.
    :param table: the table (``schema.table`` allowed).
    :param key: its key column (one row per value).
    :param columns: result column role -> column name (see :data:`DEFAULT_RESULT_COLUMNS`).
    :param where: extra SQL condition choosing the rows (trusted: written by the DAG author).
    :param owner: the claim token: the same over the task's retries, different for every task.
    :param claim_timeout: seconds after which another owner's idle claim may be taken over (None: never).
    """

    def __init__(self, db: Any, table: str, key: str, columns: Mapping[str, str], where: str | None,
                 owner: str, claim_timeout: float | None = None) -> None:
        self.db = db
        self.table = check_identifier("table", table, dotted=True)
        self.key = check_identifier("key_column", key)
        self.columns = {role: check_identifier(f"result_columns[{role!r}]", name) for role, name in columns.items()}
        self.where = f"({where})" if where and where.strip() else "1 = 1"
        self.owner = owner
        self.claim_timeout = claim_timeout
        self.p = db.placeholder

    # -- plumbing --------------------------------------------------------------------------------------------

    def _run(self, sql: str, params: Sequence[Any] = (), fetch: Callable[[Any], Any] | None = None) -> Any:
        # One connection and transaction per statement: safe from any thread (the loop's writer, on_kill's).
        with closing(self.db.get_conn()) as conn:
            cur = conn.cursor()
            try:
                cur.execute(sql, tuple(params))
                result = fetch(cur) if fetch is not None else cur.rowcount
                conn.commit()
                return result
            finally:
                cur.close()

    def _c(self, role: str) -> str:
        return self.columns[role]

    def _rows(self, cur: Any) -> list[LedgerRow]:
        names = [d[0] for d in cur.description]
        out = []
        for record in cur.fetchall():
            values = dict(zip(names, record, strict=True))
            out.append(LedgerRow(values[self.key], values, values.get(self._c("status")),
                                 values.get(self._c("request_id")) or None, values.get(self._c("digest")) or None))
        return out

    # -- before anything is claimed ---------------------------------------------------------------------------

    def column_names(self) -> list[str]:
        """The table's columns, as the database names them."""
        return list(self._run(f"SELECT * FROM {self.table} WHERE 1 = 0",  # noqa: S608 - checked identifiers
                              fetch=lambda cur: [d[0] for d in cur.description]))

    def check_schema(self, request_columns: Iterable[str]) -> None:
        """Refuse a missing column (naming it and the table's columns) or a key that is not unique.

        :param request_columns: the columns the request's fields are read from.
        """
        present = self.column_names()
        lowered = {name.lower() for name in present}
        wanted = [("key_column", self.key)] + [(f"result_columns[{r!r}]", c) for r, c in self.columns.items()]
        wanted += [("request_columns", c) for c in request_columns]
        absent = [(what, name) for what, name in wanted if name.lower() not in lowered]
        if absent:
            hint = ("Add the result columns (see docs/guides/batch.rst) or name existing ones in result_columns"
                    if any(what.startswith("result_columns") for what, _ in absent)
                    else "Name one of them instead (a typo?)")
            listed = ", ".join(f"{what}={name!r}" for what, name in absent)
            raise ValueError(f"table {self.table} has no column for {listed}; its columns are: "
                             f"{', '.join(present)}. {hint}")
        dupes = self._run(
            f"SELECT {self.key}, COUNT(*) FROM {self.table} GROUP BY {self.key} HAVING COUNT(*) > 1",  # noqa: S608
            fetch=lambda cur: cur.fetchmany(5))
        if dupes:
            shown = ", ".join(f"{k!r} ({n} rows)" for k, n in dupes)
            raise ValueError(f"key_column {self.key!r} of {self.table} is not unique: {shown}. It must name one "
                             f"row per value (a PRIMARY KEY or UNIQUE column)")

    def _workable(self, statuses: Sequence[str]) -> tuple[str, list[Any]]:
        marks = ", ".join([self.p] * len(statuses))
        return f"({self._c('status')} IS NULL OR {self._c('status')} IN ({marks}))", list(statuses)

    def _free(self) -> tuple[str, list[Any]]:
        # Free, ours, or (claim_timeout) held by an owner that has not touched it for that long: a dead run.
        claimed = self._c("claimed_by")
        if self.claim_timeout is None:
            return f"({claimed} IS NULL OR {claimed} = {self.p})", [self.owner]
        return (f"({claimed} IS NULL OR {claimed} = {self.p} OR {self._c('updated_at')} IS NULL "
                f"OR {self._c('updated_at')} < {self.p})", [self.owner, _now(self.claim_timeout)])

    def candidates(self, statuses: Sequence[str]) -> list[LedgerRow]:
        """Rows the ``where`` chooses, in a workable status, free, held by this owner or idle past
        ``claim_timeout`` (read only).

        :param statuses: the statuses (besides NULL) that are worked on.
        """
        workable, params = self._workable(statuses)
        free, free_params = self._free()
        sql = (f"SELECT * FROM {self.table} WHERE {self.where} AND {workable} "  # noqa: S608
               f"AND {free} ORDER BY {self.key}")
        return list(self._run(sql, [*params, *free_params], fetch=self._rows))

    def claim(self, keys: Sequence[Any], statuses: Sequence[str]) -> list[LedgerRow]:
        """Claim these rows where they are still free and workable; return every row this owner holds.

        :param keys: the rows to claim.
        :param statuses: as for :meth:`candidates`.
        """
        workable, params = self._workable(statuses)
        claimed = self._c("claimed_by")
        free, free_params = self._free()
        for start in range(0, len(keys), _KEYS_PER_CLAIM):
            chunk = list(keys[start:start + _KEYS_PER_CLAIM])
            # The WHERE is checked again on the row as it is when updated: a row another run claimed in the
            # meantime is left alone (SQLite: one writer at a time; PostgreSQL re-checks a row it waited for). A
            # stale claim two runs take over at once goes to one: the first sets updated_at, the second re-checks.
            self._run(
                f"UPDATE {self.table} SET {claimed} = {self.p}, {self._c('updated_at')} = {self.p} "  # noqa: S608
                f"WHERE {self.key} IN ({', '.join([self.p] * len(chunk))}) AND {workable} AND {free}",
                [self.owner, _now(), *chunk, *params, *free_params])
        return list(self._run(f"SELECT * FROM {self.table} WHERE {claimed} = {self.p} "  # noqa: S608
                              f"ORDER BY {self.key}", [self.owner], fetch=self._rows))

    # -- the writes of the loop -----------------------------------------------------------------------------

    def _set(self, key: Any, assignments: Mapping[str, Any], *, only_status: Sequence[str] | None = None) -> bool:
        sets = dict(assignments)
        sets["updated_at"] = _now()
        clause = ", ".join(f"{self._c(role)} = {self.p}" for role in sets)
        sql = (f"UPDATE {self.table} SET {clause} WHERE {self.key} = {self.p} "  # noqa: S608
               f"AND {self._c('claimed_by')} = {self.p}")
        params = [*sets.values(), key, self.owner]
        if only_status:
            sql += f" AND {self._c('status')} IN ({', '.join([self.p] * len(only_status))})"
            params += list(only_status)
        return bool(self._run(sql, params) == 1)

    def mark_submitting(self, key: Any, digest: str) -> bool:
        """The intent, before the POST: ``submitting``, the digest, no request id. False: the row is not ours.

        :param key: the row.
        :param digest: the request's digest.
        """
        return self._set(key, {"status": SUBMITTING, "digest": digest, "request_id": None, "error": None,
                               "video_uri": None, "credits": None})

    def mark_submitted(self, key: Any, request_id: str, credits: int | None) -> bool:
        """The POST returned: the request id (and the charge), at once.

        :param key: the row.
        :param request_id: the job.
        :param credits: what the vendor says it charged.
        """
        return self._set(key, {"status": SUBMITTED, "request_id": request_id, "credits": credits})

    def mark_pending(self, key: Any) -> bool:
        """The vendor refused the POST (nothing created): the row is pending again.

        :param key: the row.
        """
        return self._set(key, {"status": None, "digest": None}, only_status=[SUBMITTING])

    def mark_outcome(self, key: Any, status: str, *, error: str | None = None, video_uri: str | None = None,
                     credits: int | None = None) -> bool:
        """How the row ended: ``succeeded`` (the video's URI), ``failed``, ``cancelled``, ``ambiguous``...

        :param key: the row.
        :param status: the row's new status.
        :param error: why it did not succeed (redacted, cut to 1,000 characters).
        :param video_uri: the stored video.
        :param credits: the charge, when known (kept otherwise).
        """
        values: dict[str, Any] = {"status": status, "error": _error_text(error)}
        if video_uri is not None:
            values["video_uri"] = video_uri
        if credits is not None:
            values["credits"] = credits
        return self._set(key, values)

    def mark_cancelled(self, key: Any, request_id: str) -> bool:
        """The task was killed and the row's job cancelled. Tied to the job, not the claim: on_kill may run after
        the claims were released (``execution_timeout``).

        :param key: the row.
        :param request_id: the job cancelled.
        """
        sql = (f"UPDATE {self.table} SET {self._c('status')} = {self.p}, {self._c('error')} = {self.p}, "  # noqa: S608
               f"{self._c('updated_at')} = {self.p} WHERE {self.key} = {self.p} AND {self._c('request_id')} = {self.p}")
        return bool(self._run(sql, [CANCELLED, "cancelled: the task was killed (on_kill or execution_timeout)",
                                    _now(), key, request_id]) == 1)

    def touch(self) -> int:
        """Mark every row this owner holds as alive (``updated_at``), so ``claim_timeout`` never takes them over."""
        return int(self._run(f"UPDATE {self.table} SET {self._c('updated_at')} = {self.p} "  # noqa: S608
                             f"WHERE {self._c('claimed_by')} = {self.p}", [_now(), self.owner]))

    def release(self) -> int:
        """Hand back every row this owner holds (each keeps its status and request id for the next run)."""
        claimed = self._c("claimed_by")
        return int(self._run(f"UPDATE {self.table} SET {claimed} = NULL WHERE {claimed} = {self.p}",  # noqa: S608
                             [self.owner]))

    def count_by_status(self) -> dict[str, int]:
        """Rows the ``where`` chooses, by status (``pending`` for none): the summary's view of the table."""
        status = self._c("status")
        records = self._run(f"SELECT {status}, COUNT(*) FROM {self.table} WHERE {self.where} "  # noqa: S608
                            f"GROUP BY {status}", fetch=lambda cur: cur.fetchall())
        return {str(s or PENDING): int(n) for s, n in records}


def _error_text(error: str | None) -> str | None:
    if error is None:
        return None
    text = redact_text(error)
    suffix = " ... (truncated)"
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - len(suffix)] + suffix
