"""The request and result of one generation, and the vendor's rules. Shared by hook, operator, trigger, emulator.

Two modules, one concept each: ``models/request.py`` (what is sent, and its validation) and
``models/result.py`` (what comes back, read defensively). Import from here. Pure Python: no Airflow, no HTTP
client (the import rules and why: ``docs/architecture.rst``).
"""

from __future__ import annotations

from airflow_provider_seedance.models.request import (
    API_FIELDS,
    AUDIO_EXTENSIONS,
    DECIDING_FIELDS,
    DIGEST_VERSION,
    IMAGE_EXTENSIONS,
    MAX_MEDIA_URLS,
    MEDIA_EXTENSIONS,
    VIDEO_EXTENSIONS,
    GenerationRequest,
    is_loopback_host,
)
from airflow_provider_seedance.models.result import (
    REQUEST_ID_RULE,
    JobResult,
    JobStatus,
    check_request_id,
    is_valid_request_id,
)

__all__ = [
    "API_FIELDS",
    "AUDIO_EXTENSIONS",
    "DECIDING_FIELDS",
    "DIGEST_VERSION",
    "IMAGE_EXTENSIONS",
    "MAX_MEDIA_URLS",
    "MEDIA_EXTENSIONS",
    "REQUEST_ID_RULE",
    "VIDEO_EXTENSIONS",
    "GenerationRequest",
    "JobResult",
    "JobStatus",
    "check_request_id",
    "is_loopback_host",
    "is_valid_request_id",
]
