"""What the API says about one generation (status, output, charge), read so that no answer can crash a reader.

A broken or hostile server's answer either parses into a :class:`JobResult` that holds only bounded, checked
values, or raises :class:`~airflow_provider_seedance.errors.SeedanceResponseError`, nothing else (the rules:
"Hostile answers" in ``docs/guides/reliability.rst``). Pure Python: no Airflow, no HTTP client. Import it
from :mod:`airflow_provider_seedance.models`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from airflow_provider_seedance._bounds import (
    MAX_CREDITS,
    MAX_DURATION_SECONDS,
    bounded_int,
    cap_text,
    http_url_problem,
    is_number,
    shown_value,
)
from airflow_provider_seedance.error_answers import error_message_from_body
from airflow_provider_seedance.errors import SeedanceResponseError, SeedanceValidationError

__all__ = [
    "REQUEST_ID_RULE",
    "JobResult",
    "JobStatus",
    "check_request_id",
    "is_valid_request_id",
]

# The vendor's ids look like "req_1234567890", the emulator's "req_" + 20 hex digits. An id is put in URL
# paths and file names: no "/" or "\", no "." or ".." alone (the first character is a letter or digit).
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
#: What a request id may be, for messages.
REQUEST_ID_RULE = "1 to 128 characters of A-Z a-z 0-9 . _ : -, the first a letter or digit"
# Echoed strings are kept short: they travel in trigger events and XCom.
_MAX_ECHO = 200
_MAX_PROMPT_ECHO = 4096


def is_valid_request_id(value: Any) -> bool:
    """True when ``value`` is a request id this provider polls, cancels and names files after.

    :param value: an id from the vendor or a user.
    """
    return isinstance(value, str) and _REQUEST_ID.fullmatch(value) is not None


def check_request_id(value: Any, field: str = "request_id") -> str:
    """``value`` when it is a valid request id (:func:`is_valid_request_id`); else
    :class:`~airflow_provider_seedance.errors.SeedanceValidationError` naming ``field``. For ids a user gives.

    :param value: the id.
    :param field: the parameter's name, for the message.
    """
    if not is_valid_request_id(value):
        raise SeedanceValidationError(field, value, f"a Seedance request id: {REQUEST_ID_RULE}")
    return str(value)


class JobStatus(str, Enum):
    """A generation's status. Strings the vendor has not documented parse to UNKNOWN (never terminal)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        """True for succeeded, failed and cancelled."""
        return self in _TERMINAL

    @classmethod
    def parse(cls, raw: Any) -> JobStatus:
        """Map a status string to the enum; anything unrecognised is UNKNOWN, never success.

        :param raw: the ``status`` value from the API.
        """
        if not isinstance(raw, str):
            return cls.UNKNOWN
        # Hot path: every status poll of every wait.
        return _STATUS_BY_TEXT.get(raw.strip().lower(), cls.UNKNOWN)


_TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
# "canceled": the US spelling, same meaning, seen in many APIs.
_STATUS_BY_TEXT = {**{status.value: status for status in JobStatus}, "canceled": JobStatus.CANCELLED}


@dataclass(frozen=True)
class JobResult:
    """What the API says about one generation (submit, status or cancel response).

    :param request_id: the generation id (valid: :func:`is_valid_request_id`).
    :param status: parsed status.
    :param raw_status: the status string as received, cut to 200 characters (kept for unknown values).
    :param output_url: the video URL once succeeded: always http(s) with a host.
    :param output_type: ``output.type`` (``video``).
    :param error: the vendor's error, normalized to one readable string (at most about 1 KB), or why a
        succeeded answer's output URL was refused.
    :param credits_charged: credits charged at submit (0 to 10**9).
    :param model: echo of the model.
    :param prompt: echo of the prompt (cut to 4096 characters).
    :param duration: echo of the duration.
    :param aspect_ratio: echo of the aspect ratio.
    """

    request_id: str
    status: JobStatus
    raw_status: str | None = None
    output_url: str | None = None
    output_type: str | None = None
    error: str | None = None
    credits_charged: int | None = None
    model: str | None = None
    prompt: str | None = None
    duration: int | None = None
    aspect_ratio: str | None = None

    @property
    def succeeded(self) -> bool:
        """Succeeded *with* an output URL; success without one is not a success."""
        return self.status is JobStatus.SUCCEEDED and bool(self.output_url)

    @classmethod
    def from_api_json(cls, body: Any, *, request_id: str | None = None) -> JobResult:
        """Parse a response body; raise :class:`SeedanceResponseError` when it is not one, whatever it holds.

        Refused: no ``requestId`` (every answer of the reference carries one), an id that is not a request id
        or not the one asked about, a ``creditsCharged`` below 0 or above 10**9. A succeeded answer whose
        output URL is not http(s) parses without the URL, its ``error`` saying why (the task then fails
        naming the request, instead of asking again forever).

        :param body: decoded JSON.
        :param request_id: the id asked about (the answer's must equal it).
        """
        try:
            return cls._parse(body, request_id)
        except SeedanceResponseError:
            raise
        except Exception as exc:
            # Whatever a hostile body makes go wrong is a malformed answer: a read asks again, a submit is
            # ambiguous and never re-sent (an OverflowError escaping here once skipped that guard).
            raise SeedanceResponseError(f"the answer could not be read ({type(exc).__name__})",
                                        request_id=request_id) from None

    @classmethod
    def _parse(cls, body: Any, asked: str | None) -> JobResult:
        # dict first: JSON objects are dicts, and it spares the far slower Mapping ABC check on the hot path.
        if not isinstance(body, (dict, Mapping)):
            raise SeedanceResponseError(f"expected a JSON object, got {type(body).__name__}", request_id=asked)
        rid = body.get("requestId")
        if rid is None:
            raise SeedanceResponseError("the answer has no requestId", request_id=asked)
        if not is_valid_request_id(rid):
            # It would be polled, cancelled and put in file names: "../../tmp/x" must never get that far.
            raise SeedanceResponseError(f"the answer's requestId {shown_value(rid)} is not a request id "
                                        f"({REQUEST_ID_RULE})", request_id=asked)
        if asked is not None and rid != asked:
            # Another job's answer (a caching proxy, a server bug): its "succeeded" must never deliver its
            # video as ours. A malformed answer, so a status check asks again.
            raise SeedanceResponseError(f"the answer is about request {rid!r}, not the one asked for",
                                        request_id=asked)
        raw = body.get("status")
        raw_status = cap_text(raw, _MAX_ECHO) if isinstance(raw, str) else None
        status = JobStatus.parse(raw_status)
        output_url, output_type, refused = _output(body.get("output"))
        # An answer about a job in progress has no error: only the ones that do pay for reading it.
        message = error_message_from_body(body)[0] if body.get("error") or body.get("message") else None
        if refused is not None and status is JobStatus.SUCCEEDED:
            message = f"the output URL was refused: {refused}" + (f" (vendor error: {message})" if message else "")
        return cls(
            request_id=rid,
            status=status,
            raw_status=raw_status,
            output_url=output_url,
            output_type=output_type,
            error=message,
            credits_charged=_credits(body.get("creditsCharged"), rid),
            model=_echo(body.get("model")),
            prompt=_echo(body.get("prompt"), _MAX_PROMPT_ECHO),
            duration=bounded_int(body.get("duration"), 0, MAX_DURATION_SECONDS),
            aspect_ratio=_echo(body.get("aspectRatio")),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-simple dict (trigger events, XCom)."""
        return {
            "request_id": self.request_id,
            "status": self.status.value,
            "raw_status": self.raw_status,
            "output_url": self.output_url,
            "output_type": self.output_type,
            "error": self.error,
            "credits_charged": self.credits_charged,
            "model": self.model,
            "prompt": self.prompt,
            "duration": self.duration,
            "aspect_ratio": self.aspect_ratio,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobResult:
        """Inverse of :meth:`to_dict`; ``ValueError`` when ``data`` has no request id (fields of a wrong type,
        numbers out of range and an output URL that is not http(s) are dropped, so a foreign or damaged
        payload can never pass for a result).

        :param data: a dict from :meth:`to_dict`.
        """
        rid = data.get("request_id") if isinstance(data, Mapping) else None
        if not isinstance(rid, str) or not rid:
            raise ValueError(f"not a JobResult dict (no request_id): {shown_value(data, 300)}")
        url = _str_or_none(data.get("output_url"))
        return cls(
            request_id=rid,
            status=JobStatus.parse(data.get("status")),
            raw_status=_str_or_none(data.get("raw_status")),
            output_url=url if url is not None and http_url_problem(url) is None else None,
            output_type=_str_or_none(data.get("output_type")),
            error=_str_or_none(data.get("error")),
            credits_charged=bounded_int(data.get("credits_charged"), 0, MAX_CREDITS),
            model=_str_or_none(data.get("model")),
            prompt=_str_or_none(data.get("prompt")),
            duration=bounded_int(data.get("duration"), 0, MAX_DURATION_SECONDS),
            aspect_ratio=_str_or_none(data.get("aspect_ratio")),
        )


def _output(output: Any) -> tuple[str | None, str | None, str | None]:
    """``(url, type, why the URL was refused)`` of the ``output`` field (an object, or the URL as a string)."""
    url: Any = None
    otype: Any = None
    if isinstance(output, (dict, Mapping)):
        url, otype = output.get("url"), output.get("type")
    elif isinstance(output, str):
        url = output
    output_type = cap_text(otype, _MAX_ECHO) if isinstance(otype, str) else None
    if not isinstance(url, str) or not url:
        return None, output_type, None
    problem = http_url_problem(url)
    return (url, output_type, None) if problem is None else (None, output_type, problem)


def _credits(value: Any, request_id: str) -> int | None:
    """The charge, or None when absent or not a whole number; a number out of range is a broken answer."""
    if not is_number(value):
        return None
    if not 0 <= value <= MAX_CREDITS:  # NaN and infinities fail this too
        # A negative charge once switched the run budget off; a 400-digit one crashed the reader.
        raise SeedanceResponseError(
            f"the answer's creditsCharged is {shown_value(value)}: a charge is 0 to {MAX_CREDITS} credits",
            request_id=request_id,
        )
    return bounded_int(value, 0, MAX_CREDITS)


def _echo(value: Any, limit: int = _MAX_ECHO) -> str | None:
    return cap_text(value, limit) if isinstance(value, str) else None


def _str_or_none(v: Any) -> str | None:
    return v if isinstance(v, str) else None
