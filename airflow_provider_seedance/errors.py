"""Exceptions users can catch, whether a failed call is sent again (``is_retryable``) and whether a failed
submit may have created a job (``ambiguous_if_sent``, ``created_nothing``). Reading an error answer:
:mod:`airflow_provider_seedance.error_answers`.

Pure Python: no Airflow, no HTTP client. The hook, the trigger, the emulator and the tests share it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from airflow_provider_seedance._bounds import MAX_VENDOR_TEXT, cap_text
from airflow_provider_seedance._redact import redact_text

__all__ = [
    "SeedanceAPIError",
    "SeedanceAmbiguousSubmitError",
    "SeedanceAuthError",
    "SeedanceConflictError",
    "SeedanceConnectionError",
    "SeedanceError",
    "SeedanceHostNotFoundError",
    "SeedanceInsufficientCreditsError",
    "SeedanceJobFailedError",
    "SeedanceJobTimeoutError",
    "SeedanceNotFoundError",
    "SeedanceRateLimitError",
    "SeedanceRequestTimeoutError",
    "SeedanceResponseError",
    "SeedanceServerError",
    "SeedanceTransportError",
    "SeedanceUnknownModelError",
    "SeedanceValidationError",
    "ambiguous_if_sent",
    "created_nothing",
    "is_retryable",
]


class SeedanceError(Exception):
    """Base class of every error this provider raises."""


class SeedanceValidationError(SeedanceError, ValueError):
    """A request field breaks a vendor rule. Raised before any request is sent.

    :param field: Python (snake_case) name of the offending field.
    :param value: the rejected value, kept as given; the message shows it with URL credentials masked
        (the API key is never a field).
    :param allowed: human-readable description of what is allowed.
    :param api_field: the camelCase name of the field in the API body, when it differs.
    """

    def __init__(self, field: str, value: Any, allowed: str, *, api_field: str | None = None) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.api_field = api_field or field
        shown = _short_repr(value)
        name = field if self.api_field == field else f"{field} ({self.api_field})"
        super().__init__(f"Invalid {name}: {shown}. Allowed: {allowed}.")


class SeedanceUnknownModelError(SeedanceValidationError):
    """The model is neither a built-in model nor listed in the vendor's catalogue.

    :param value: the model name asked for.
    :param available: model ids known (built in or from the live catalogue).
    :param note: where the list comes from, e.g. "catalogue unreachable: built-in models only".
    """

    def __init__(self, value: Any, available: Sequence[str], *, note: str | None = None) -> None:
        self.available = list(available)
        self.note = note
        allowed = "one of " + ", ".join(self.available)
        super().__init__("model", value, f"{allowed} ({note})" if note else allowed)


class SeedanceConnectionError(SeedanceError, ValueError):
    """The Airflow connection cannot be used as it is (no API key, a bad base URL or extra)."""


class SeedanceAPIError(SeedanceError):
    """The API answered with an error.

    :param message: readable message (the vendor's, when it gave one).
    :param status_code: HTTP status, when there was a response.
    :param request_id: the generation this call was about, when known.
    :param code: the vendor's machine-readable error code, when given.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        code: str | None = None,
    ) -> None:
        # A vendor message may echo a signed URL back: what we show and log carries no credential. Cut first:
        # redacting a 4 MiB message blocked a triggerer's event loop for seconds.
        message = redact_text(cap_text(message, _MAX_MESSAGE))
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        self.code = code
        parts = [message]
        if status_code is not None:
            parts.append(f"HTTP {status_code}")
        if request_id:
            parts.append(f"request id {request_id}")
        super().__init__(" | ".join(parts))


class SeedanceAuthError(SeedanceAPIError):
    """401/403: the API key is missing, wrong, revoked or expired."""


class SeedanceInsufficientCreditsError(SeedanceAPIError):
    """402: the account has not enough credits for this generation."""


class SeedanceNotFoundError(SeedanceAPIError):
    """404: unknown request id (or wrong base URL)."""


class SeedanceConflictError(SeedanceAPIError):
    """409: e.g. cancelling a job that already finished."""


class SeedanceRateLimitError(SeedanceAPIError):
    """429: too many requests. ``retry_after`` is in seconds when the server said so."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class SeedanceRequestTimeoutError(SeedanceAPIError):
    """408: the server gave up waiting for the request (typically a load balancer closing an idle kept-alive
    connection). It did not act on it, so it is sent again, on a fresh connection, even a POST."""


class SeedanceServerError(SeedanceAPIError):
    """5xx: the service failed. A POST that got this may still have created a job."""


class SeedanceResponseError(SeedanceAPIError):
    """The response could not be understood (not JSON, wrong shape)."""


class SeedanceTransportError(SeedanceError):
    """No usable HTTP response: connection refused/reset, DNS failure, timeout.

    :param message: what happened.
    :param sent: False only when the request certainly never reached the server (connect failed),
        which is what makes a POST safe to retry.
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        self.sent = sent
        super().__init__(redact_text(cap_text(message, _MAX_MESSAGE)))


class SeedanceHostNotFoundError(SeedanceTransportError):
    """The API's host name does not resolve: a wrong host field, or no DNS. Not retried by the hook (it is
    rarely a blip, and waiting it out hid the cause for 47 s); a trigger waiting on a job already submitted
    treats it as transient until its deadline."""


class SeedanceAmbiguousSubmitError(SeedanceError):
    """A submit failed in a way that may have created (and charged) a job. Never retried blindly.

    :param cause: the underlying failure.
    """

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause
        super().__init__(
            "Submitting the generation failed after the request may have reached Seedance, so a job "
            f"may exist and may have been charged ({cause}). It was not re-sent, to avoid paying twice. "
            "Check your Seedance dashboard before retrying; set the task's retries knowing this."
        )


class SeedanceJobFailedError(SeedanceError):
    """The generation ended failed or cancelled, or succeeded without an output URL.

    :param request_id: the generation.
    :param status: its final status string.
    :param message: the vendor's error message, or ours.
    """

    def __init__(self, request_id: str, status: str, message: str | None) -> None:
        self.request_id = request_id
        self.status = status
        self.vendor_message = redact_text(cap_text(message)) if message else message
        shown = self.vendor_message or "no error message given"
        super().__init__(f"Seedance generation {request_id} ended {status}: {shown}")


class SeedanceJobTimeoutError(SeedanceError):
    """The generation did not finish before the deadline (it was cancelled when possible)."""


# Our own words around a vendor message (itself at most MAX_VENDOR_TEXT) fit in this.
_MAX_MESSAGE = 4 * MAX_VENDOR_TEXT
def _short_repr(value: Any, limit: int = 200) -> str:
    # Masked before it is cut: a cut could otherwise split "user:password@" and leave half of it visible.
    text = redact_text(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_retryable(exc: BaseException, *, idempotent: bool) -> bool:
    """Whether a failed call may be sent again.

    GET and cancel are idempotent: 408, 429, 5xx, malformed bodies and transport failures are retried.
    A submit (POST) is not: only a 408 or 429 (the service did not take it) or a connection that never
    opened is retried, because anything else may already have created and charged a job. A host name
    that does not resolve is never retried here (see :class:`SeedanceHostNotFoundError`).

    :param exc: the failure.
    :param idempotent: whether repeating the call cannot create a second job.
    """
    if isinstance(exc, (SeedanceRateLimitError, SeedanceRequestTimeoutError)):
        return True
    if isinstance(exc, SeedanceHostNotFoundError):
        return False
    if isinstance(exc, SeedanceTransportError):
        return idempotent or not exc.sent
    if isinstance(exc, (SeedanceServerError, SeedanceResponseError)):
        return idempotent
    return False


@contextlib.contextmanager
def ambiguous_if_sent() -> Iterator[None]:
    """Around a submit's POST: a failure that may have created a job becomes
    :class:`SeedanceAmbiguousSubmitError`, which is never re-sent; a refusal that created nothing passes as is."""
    try:
        yield
    except SeedanceAmbiguousSubmitError:
        raise
    except SeedanceError as exc:
        # One rule with the operator and the batch (created_nothing): a 3xx, a 1xx or a 2xx saying
        # success:false after a POST may have created a job as surely as a lost connection.
        if not created_nothing(exc):
            raise SeedanceAmbiguousSubmitError(exc) from exc
        raise


def created_nothing(exc: BaseException) -> bool:
    """Whether a failed submit certainly created no job: refused before sending, or answered with a refusal.

    Anything else (an unreadable answer, a 1xx/3xx, a 5xx, a connection lost after sending, a timeout, any
    other exception) may have created a job. The one rule for the operator and the batch alike.

    :param exc: what a submit raised.
    """
    if isinstance(exc, (SeedanceValidationError, SeedanceConnectionError)) or is_retryable(exc, idempotent=False):
        return True
    if isinstance(exc, SeedanceTransportError) and not exc.sent:  # a host that does not resolve: never sent
        return True
    # An error status other than 5xx is the API refusing the request (bad key, no credits, bad field).
    return (isinstance(exc, SeedanceAPIError) and not isinstance(exc, (SeedanceServerError, SeedanceResponseError))
            and exc.status_code is not None and 400 <= exc.status_code < 500)
