"""The one URL redaction keeps the stricter rules persist.py used to apply on its own (issue 15, item 6).

persist.py hid a URL's whole query and fragment. The shared helper keeps harmless parameters readable (the
property tests pin that), so it hides what persist's rule was there for: a credential under a name no list
knows (by its shape), and the fragment.
"""

from __future__ import annotations

import pytest

from airflow_provider_seedance._redact import MASK, redact_text, redact_url, url_secrets

HMAC = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"


@pytest.mark.parametrize(("url", "secret", "kept"), [
    (f"https://cdn.example.com/v.mp4?hdnts=exp%3D1700000000~acl%3D%2F*~hmac%3D{HMAC}&Expires=1700000000",
     HMAC, "Expires=1700000000"),
    (f"https://cdn.example.com/v.mp4?Policy={JWT}&X-Amz-Date=20260101T000000Z", JWT, "X-Amz-Date=20260101T000000Z"),
    (f"https://cdn.example.com/v.mp4?v=2&verify={HMAC}", HMAC, "v=2"),
])
def test_a_credential_under_an_unknown_name_is_hidden_by_its_shape(url: str, secret: str, kept: str) -> None:
    for shown in (redact_url(url), redact_text(f"GET {url} failed")):
        assert secret not in shown
        assert kept in shown
    assert any(secret in value for value in url_secrets(url))  # registered with the masker as well


@pytest.mark.parametrize("fragment", ["frag", "access_token=abc", f"state=x&id_token={JWT}"])
def test_the_fragment_is_hidden_whole(fragment: str) -> None:
    assert redact_url(f"https://app.example.com/cb#{fragment}") == f"https://app.example.com/cb#{MASK}"


@pytest.mark.parametrize("url", [
    "https://cdn.example.com/files/req_0123456789abcdef.mp4?width=1280&lang=en",  # ids in the path stay
    "https://cdn.example.com/v.mp4?X-Amz-Expires=3600&X-Amz-Date=20260101T000000Z",
    "https://cdn.example.com/v.mp4?name=a-rather-long-but-plain-file-name",  # long, but no digit: a word
])
def test_ordinary_urls_stay_readable(url: str) -> None:
    assert redact_url(url) == url
    assert url_secrets(url) == []
