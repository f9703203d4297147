"""One row of the asset table as a generation: its request (from columns or per-row templates), validated once,
its destination, its estimate; and which shard it belongs to.

Everything here runs before the first POST, so a bad input (a wrong type, a template that renders an
invalid request, a bad destination) is refused with the row, the field and the column named, and nothing is
spent. Design: ``docs/guides/batch.rst``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_seedance.errors import SeedanceError, SeedanceValidationError
from airflow_provider_seedance.models import API_FIELDS, GenerationRequest
from airflow_provider_seedance.operators._batch_ledger import LedgerRow

__all__ = ["BATCH_METADATA_KEY", "REQUEST_FIELDS", "PlannedRow", "RowPlanner", "SeedanceBatchInputError", "shard_of"]

REQUEST_FIELDS = tuple(API_FIELDS)
#: Key of the job metadata that ties a job to its row (table, key, owner), for anyone reconciling by hand.
BATCH_METADATA_KEY = "seedance_batch"


class SeedanceBatchInputError(SeedanceError, ValueError):
    """A batch input is wrong (a column, a row's value, a template, a destination); nothing was sent."""


def shard_of(key: Any, shard_count: int) -> int:
    """The shard a row belongs to: a stable hash of its key (the same in every process and Python version).

    :param key: the row's key.
    :param shard_count: how many shards split the table.
    """
    digest = hashlib.sha256(str(key).encode("utf-8", "surrogatepass")).hexdigest()
    return int(digest[:12], 16) % shard_count


def check_request_mapping(request_columns: Mapping[str, str] | None,
                          request_template: Mapping[str, Any] | None) -> None:
    """Refuse an unknown request field, a field given twice, or no prompt (at DAG parse time).

    :param request_columns: request field -> column.
    :param request_template: request field -> template or constant.
    """
    columns, template = dict(request_columns or {}), dict(request_template or {})
    for what, mapping in (("request_columns", columns), ("request_template", template)):
        unknown = sorted(set(mapping) - set(REQUEST_FIELDS))
        if unknown:
            raise ValueError(f"{what} has unknown request field(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(REQUEST_FIELDS)}")
    both = sorted(set(columns) & set(template))
    if both:
        raise ValueError(f"request field(s) {', '.join(both)} given in both request_columns and request_template")
    if "prompt" not in columns and "prompt" not in template:
        raise ValueError("the request needs a prompt: name its column in request_columns={'prompt': ...} or give "
                         "a per-row template in request_template={'prompt': '{{ row.title }} ...'}")
    for field, column in columns.items():
        if not isinstance(column, str) or not column:
            raise ValueError(f"request_columns[{field!r}] must be a column name, got {column!r}")


@dataclass(frozen=True)
class PlannedRow:
    """A claimed (or, in a dry run, candidate) row, ready to submit or re-attach.

    :param row: the row as read.
    :param request: its validated request.
    :param digest: ``request.digest()``.
    :param destination: where its video is saved (None: not saved; the vendor's URL is written back).
    :param estimate: expected credits (None: unknown).
    """

    row: LedgerRow
    request: GenerationRequest
    digest: str
    destination: str | None
    estimate: int | None

    @property
    def key(self) -> Any:
        """The row's key."""
        return self.row.key


class RowPlanner:
    """Builds and validates each row's request, through the hook (an unknown model is looked up once).

    :param hook: the Seedance hook (``validate_request``, ``estimate``).
    :param env: the Jinja environment of the task (the DAG's macros and filters).
    :param context: the task's context, available to the templates beside ``row``.
    :param request_columns: request field -> column.
    :param request_template: request field -> template (a string) or constant.
    :param destination: template of each row's video file, or None.
    :param key_column: the key column (for messages).
    :param batch_tag: what goes under :data:`BATCH_METADATA_KEY` (with the row's key) in each job's metadata.
    """

    def __init__(self, hook: Any, env: Any, context: Mapping[str, Any], request_columns: Mapping[str, str],
                 request_template: Mapping[str, Any], destination: str | None, key_column: str,
                 batch_tag: Mapping[str, Any]) -> None:
        self.hook = hook
        self.env = env
        self.context = context
        self.columns = dict(request_columns)
        self.template = dict(request_template)
        self.destination = destination
        self.key_column = key_column
        self.batch_tag = dict(batch_tag)
        self._compiled = {f: env.from_string(t) for f, t in self.template.items() if isinstance(t, str)}
        self._compiled_dest = env.from_string(destination) if destination else None
        self._estimates: dict[str, int | None] = {}

    def _where(self, row: LedgerRow, field: str) -> str:
        source = (f"column {self.columns[field]!r}" if field in self.columns
                  else f"request_template[{field!r}]" if field in self.template else "the batch's metadata")
        return f"row {self.key_column}={row.key!r}: request field {field!r} (from {source})"

    def _render(self, row: LedgerRow, what: str, template: Any) -> str:
        try:
            return str(template.render(**self.context, row=dict(row.values)))
        except Exception as exc:  # any Jinja error: undefined name, bad filter, syntax met at render time
            raise SeedanceBatchInputError(
                f"row {self.key_column}={row.key!r}: rendering {what} failed: {type(exc).__name__}: {exc}") from exc

    def plan(self, row: LedgerRow) -> PlannedRow:
        """The row's request, validated (a wrong type or an invalid rendered value names row, field, column).

        :param row: the row.
        """
        fields: dict[str, Any] = {f: row.values.get(c) for f, c in self.columns.items()}
        for field, template in self.template.items():
            compiled = self._compiled.get(field)
            fields[field] = self._render(row, f"request_template[{field!r}]", compiled) if compiled else template
        try:
            request = GenerationRequest(**fields)
            metadata = dict(request.metadata or {})
            metadata.setdefault(BATCH_METADATA_KEY, {**self.batch_tag, "key": str(row.key)})
            request = GenerationRequest(**{**fields, "metadata": metadata})
            self.hook.validate_request(request)
        except SeedanceValidationError as exc:
            raise SeedanceBatchInputError(f"{self._where(row, exc.field)}: {exc}") from exc
        destination = self._render(row, "destination", self._compiled_dest) if self._compiled_dest else None
        if destination is not None:
            from airflow_provider_seedance.persist import destination_problem

            problem = destination_problem(destination)
            if problem is not None:
                raise SeedanceBatchInputError(
                    f"row {self.key_column}={row.key!r}: destination {destination!r}: {problem[0]}. Allowed: a "
                    f"file path per row, e.g. {problem[1]!r}")
        return PlannedRow(row, request, request.digest(), destination, self._estimate(request))

    def _estimate(self, request: GenerationRequest) -> int | None:
        # Rows of one table mostly share model, duration and resolution: price each combination once.
        combo = f"{request.model}|{request.duration}|{request.resolution}|{request.is_text_to_video}"
        if combo not in self._estimates:
            self._estimates[combo] = self.hook.estimate(request).credits
        return self._estimates[combo]


def check_unique_destinations(rows: list[PlannedRow], key_column: str) -> None:
    """Refuse two rows writing one file (one would overwrite the other's video).

    :param rows: the planned rows.
    :param key_column: for the message.
    """
    seen: dict[str, Any] = {}
    for planned in rows:
        if planned.destination is None:
            continue
        other = seen.setdefault(planned.destination, planned.key)
        if other != planned.key:
            raise SeedanceBatchInputError(
                f"rows {key_column}={other!r} and {key_column}={planned.key!r} render the same destination "
                f"{planned.destination!r}: make it unique per row, e.g. include {{{{ row.{key_column} }}}}")
