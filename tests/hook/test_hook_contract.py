"""Client and server agree on the contract: what the hook refuses, the API refuses, and what it sends, the API takes.

Bodies are drawn around the reference's rules (valid and invalid values for every field), pushed
through ``GenerationRequest`` and ``SeedanceHook.submit`` against the emulator over real HTTP. A
request the model refuses must send nothing; a request it accepts must be accepted by the API
(whose rules come from the same OpenAPI document schemathesis fuzzes in tests/emulator).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_seedance.emulator.testing import EmulatorHandle
from airflow_provider_seedance.errors import SeedanceAPIError, SeedanceValidationError
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import GenerationRequest

MEDIA = st.sampled_from([
    "https://cdn.example.com/a.jpg", "https://cdn.example.com/clip.MOV", "https://cdn.example.com/beat.mp3",
    "https://cdn.example.com/no-extension",
    "https://bucket.s3.amazonaws.com/p.png?X-Amz-Signature=abc&X-Amz-Expires=300",  # presigned
    "http://127.0.0.1:9/local.webp",
    "http://example.com/plain-http.jpg", "https://cdn.example.com/doc.pdf", "ftp://cdn.example.com/a.jpg",
    "not a url", "", "https://", 42,
])
BODY = st.fixed_dictionaries(
    {"prompt": st.one_of(st.just("a kite over hills"), st.sampled_from(["", "   ", None, 7]))},
    optional={
        "model": st.sampled_from(["seedance-2.0", "seedance-2.0-fast", "seedance-1.5-pro", "seedance-9", "", 3]),
        "mediaUrls": st.one_of(st.lists(MEDIA, min_size=0, max_size=7), st.just("https://cdn.example.com/a.jpg")),
        "aspectRatio": st.sampled_from(["16:9", "9:16", "1:1", "4:3", "", 1]),
        "duration": st.one_of(st.integers(min_value=0, max_value=20), st.sampled_from([5.5, "5", True, None])),
        "resolution": st.sampled_from(["480p", "720p", "1080p", "4k", ""]),
        "webhookUrl": st.sampled_from(["https://hooks.example.com/x?token=1", "http://example.com/x", "nope"]),
        "metadata": st.one_of(st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
                              st.sampled_from([[1], "x", 3])),
    },
)


@pytest.fixture
def contract_hook(emu: EmulatorHandle) -> Any:
    emu.admin.configure(time_scale=50)  # jobs stay queued: nothing to wait for here
    with SeedanceHook(max_retries=0) as hook:
        yield hook


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=BODY)
def test_what_the_hook_refuses_is_never_sent_and_what_it_sends_is_accepted(
    body: dict[str, Any], emu: EmulatorHandle, contract_hook: SeedanceHook
) -> None:
    before = emu.admin.stats()["submits"]
    try:
        # The API's own field names in, as a user's JSON config might arrive.
        request = GenerationRequest.from_api_json({"model": "seedance-2.0", **body})
    except SeedanceValidationError:
        request = None
    if request is not None:
        try:
            contract_hook.submit(request)
        except SeedanceValidationError:
            request = None
        except SeedanceAPIError as exc:  # the client accepted what the API refused: a contract gap
            pytest.fail(f"the API refused a request the hook sent: {exc} (body {request.to_api_json()})")
    after = emu.admin.stats()["submits"]
    assert after - before == (0 if request is None else 1)
