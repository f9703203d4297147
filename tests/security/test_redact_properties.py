"""Property tests of the one redaction helper: credentials never survive it, and it never raises."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from airflow_provider_seedance._redact import MASK, is_sensitive_param, redact_text, redact_url, url_secrets

settings.register_profile("seedance-security", max_examples=200, deadline=None)
settings.load_profile("seedance-security")

SENSITIVE = ["token", "access_token", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "sig",
             "signature", "api_key", "apikey", "password", "X-Goog-Signature", "AWSAccessKeyId", "key", "secret"]
BENIGN = ["width", "X-Amz-Date", "X-Amz-Expires", "format", "v", "lang", "monkey", "tokenizer_version"]
# Secrets and benign values come from disjoint alphabets, so "absent" is a meaningful check.
secret_values = st.text(alphabet="ABCDEFGHJKMNPQRSTUVWXYZ23456789", min_size=6, max_size=24).map(lambda s: "S" + s)
benign_values = st.text(alphabet="abcdefghijk", min_size=1, max_size=8)
hosts = st.sampled_from(["cdn.example.com", "127.0.0.1", "bucket.s3.amazonaws.com", "[::1]", "h.example.org:8443"])
paths = st.lists(st.text(alphabet="abcxyz019_-.", min_size=1, max_size=8), max_size=3).map(lambda p: "/" + "/".join(p))


@st.composite
def credentialed_urls(draw: st.DrawFn) -> tuple[str, list[str], list[str]]:
    """A URL, the secret values in it, and benign values that must stay."""
    secrets: list[str] = []
    benign: list[str] = []
    userinfo = ""
    kind = draw(st.sampled_from(["none", "user", "user:pass"]))
    if kind == "user":
        secrets.append(draw(secret_values))
        userinfo = secrets[-1] + "@"
    elif kind == "user:pass":
        secrets.append(draw(secret_values))
        userinfo = "someone:" + secrets[-1] + "@"
    params = []
    for name in draw(st.lists(st.sampled_from(SENSITIVE + BENIGN), max_size=4)):
        if name in SENSITIVE:
            value = draw(secret_values)
            secrets.append(value)
        else:
            value = draw(benign_values)
            benign.append(f"{name}={value}")
        params.append(f"{name}={value}")
    query = ("?" + "&".join(params)) if params else ""
    fragment = ""
    if draw(st.booleans()):
        secrets.append(draw(secret_values))
        fragment = "#access_token=" + secrets[-1]
    url = f"{draw(st.sampled_from(['https', 'http']))}://{userinfo}{draw(hosts)}{draw(paths)}{query}{fragment}"
    return url, secrets, benign


@given(credentialed_urls())
def test_no_secret_survives_and_benign_parts_stay(case: tuple[str, list[str], list[str]]) -> None:
    url, secrets, benign = case
    for shown in (redact_url(url), redact_text(f"failed: {url}."), redact_text(repr([url, "x"]))):
        for secret in secrets:
            assert secret not in shown, (url, shown)
        for item in benign:
            assert item in shown, (url, shown)
    if not secrets:
        assert redact_url(url) == url
    else:
        assert MASK in redact_url(url)
    found = url_secrets([url])
    assert set(secrets) <= set(found)


@given(st.text(max_size=200))
def test_any_text_is_returned_as_text_never_an_exception(text: str) -> None:
    for fn in (redact_text, redact_url):
        out = fn(text)
        assert isinstance(out, str)
    assert isinstance(url_secrets(text), list)
    assert redact_text(text) == text or "://" in text


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
@example("?0=")  # found by CI: a parameter value used to swallow a later "?token=..."
def test_malformed_urls_are_still_masked(junk: str) -> None:
    secret = "SXYZSECRET42"
    for url in (f"https://u:{secret}@[{junk}/a?token={secret}", f"http://{junk}@h/x?sig={secret}#{junk}"):
        assert secret not in redact_url(url)
        assert secret not in redact_text(f"at {url}")


def test_parameter_names() -> None:
    assert all(is_sensitive_param(n) for n in SENSITIVE)
    assert not any(is_sensitive_param(n) for n in BENIGN)
