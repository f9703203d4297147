"""persist_video against real HTTP: the emulator's output files and a loopback server for bad bodies."""

from __future__ import annotations

import logging
import time
import traceback
import tracemalloc
from pathlib import Path

import pytest
import requests
from fsspec.implementations.memory import MemoryFileSystem

from airflow_provider_seedance._redact import redact_url
from airflow_provider_seedance.emulator.server import sample_video_path
from airflow_provider_seedance.persist import SeedancePersistError, persist_video

MiB = 1024 * 1024


def _finished_output_url(emu, **behaviour) -> str:
    """Submit one job to the emulator over HTTP and wait for its output URL."""
    if behaviour:
        emu.admin.set_next_jobs(**behaviour)
    resp = requests.post(
        f"{emu.base_url}/api/open/v1/video/generations",
        json={"model": "seedance-2.0", "prompt": "a lighthouse at dusk"},
        headers={"Authorization": f"Bearer {emu.api_key}"},
        timeout=10,
    )
    resp.raise_for_status()
    rid = resp.json()["requestId"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        body = requests.get(
            f"{emu.base_url}/api/open/v1/video/generations/{rid}",
            headers={"Authorization": f"Bearer {emu.api_key}"},
            timeout=10,
        ).json()
        if body["status"] == "succeeded":
            return body["output"]["url"]
        time.sleep(0.05)
    raise AssertionError(f"job {rid} did not finish")


def _shown_in_traceback(exc: BaseException) -> str:
    """The messages a logged traceback of ``exc`` would show, chained exceptions included."""
    return "".join(traceback.format_exception_only(type(exc), exc)) + "".join(
        line for line in traceback.format_exception(exc) if not line.startswith("  ")
    )


def _files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_emulator_video_is_stored_byte_for_byte(seedance_emulator, tmp_path):
    url = _finished_output_url(seedance_emulator)
    target = tmp_path / "videos" / "day" / "clip.mp4"  # parents do not exist yet

    uri = persist_video(url, f"file://{target}")

    assert uri == f"file://{target}"
    assert target.read_bytes() == sample_video_path().read_bytes()
    assert target.read_bytes()[4:8] == b"ftyp"
    assert _files_under(tmp_path) == ["videos/day/clip.mp4"]  # no temp file left beside it


def test_plain_local_path_and_overwrite(seedance_emulator, tmp_path):
    url = _finished_output_url(seedance_emulator)
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"old")

    uri = persist_video(url, str(target))

    assert uri == f"file://{target}"
    assert target.read_bytes() == sample_video_path().read_bytes()
    assert _files_under(tmp_path) == ["clip.mp4"]


class _RecordingMemoryFS(MemoryFileSystem):
    """An object store stand-in: no rename (fsspec's mv is copy + delete); records what was opened."""

    opened: list[str] = []

    def _open(self, path, mode="rb", **kwargs):
        if "w" in mode:
            type(self).opened.append(path)
        return super()._open(path, mode, **kwargs)


@pytest.fixture
def memory_store():
    from airflow.sdk.io import attach

    _RecordingMemoryFS.opened.clear()
    fs = _RecordingMemoryFS()
    fs.store.clear()
    from airflow.sdk.io import store as store_module

    store_module._STORE_CACHE.pop("memory", None)
    attach("memory", fs=fs)  # registers the store for every memory:// ObjectStoragePath
    yield fs
    fs.store.clear()
    store_module._STORE_CACHE.pop("memory", None)  # leave no test store behind for other tests


def test_object_store_without_rename(seedance_emulator, memory_store):
    from airflow.sdk import ObjectStoragePath

    url = _finished_output_url(seedance_emulator)
    dest = ObjectStoragePath("memory://bucket/videos/clip.mp4")

    uri = persist_video(url, dest)

    # universal-pathlib < 0.3 (Airflow 3.0) writes memory URIs with a third slash.
    assert uri.replace(":///", "://") == "memory://bucket/videos/clip.mp4"
    assert dest.read_bytes() == sample_video_path().read_bytes()
    # Written under a temp key beside the target, then copied onto it; the temp is gone.
    assert len(memory_store.opened) == 1
    assert memory_store.opened[0].startswith("/bucket/videos/.clip.mp4.")
    assert memory_store.opened[0].endswith(".part")
    assert sorted(memory_store.store) == ["/bucket/videos/clip.mp4"]


def test_object_store_failure_leaves_nothing(loopback, memory_store):
    with pytest.raises(SeedancePersistError):
        persist_video(f"{loopback.base_url}/drop?size={MiB}", "memory://bucket/videos/clip.mp4")

    assert memory_store.opened  # the temp was written...
    assert sorted(memory_store.store) == []  # ...and removed; nothing under the final key


def test_emulator_drop_mid_download_leaves_no_file(seedance_emulator, tmp_path):
    url = _finished_output_url(seedance_emulator)
    seedance_emulator.admin.add_fault(kind="drop", endpoint="files")
    target = tmp_path / "clip.mp4"

    with pytest.raises(SeedancePersistError) as info:
        persist_video(url, target)

    assert info.value.reason == "truncated"
    assert _files_under(tmp_path) == []


def test_expired_output_url_is_an_http_error(seedance_emulator, tmp_path):
    url = _finished_output_url(seedance_emulator, output_expires_seconds=0)

    with pytest.raises(SeedancePersistError, match="HTTP 404") as info:
        persist_video(url, tmp_path / "clip.mp4")

    assert info.value.reason == "http"
    assert _files_under(tmp_path) == []


def test_memory_stays_bounded_for_a_large_body(loopback, tmp_path):
    size = 48 * MiB
    target = tmp_path / "big.mp4"

    tracemalloc.start()
    try:
        persist_video(f"{loopback.base_url}/video?size={size}", target, chunk_size=256 * 1024)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert target.stat().st_size == size
    # Whole-file buffering would peak above 48 MiB; streaming stays at a few chunks.
    assert peak < 6 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"


def test_drop_keeps_the_previous_file_intact(loopback, tmp_path):
    target = tmp_path / "clip.mp4"
    target.write_bytes(b"previous good video")

    with pytest.raises(SeedancePersistError) as info:
        persist_video(f"{loopback.base_url}/drop?size={4 * MiB}", target)

    assert info.value.reason == "truncated"
    assert target.read_bytes() == b"previous good video"
    assert _files_under(tmp_path) == ["clip.mp4"]


def test_html_error_page_is_refused(loopback, tmp_path):
    with pytest.raises(SeedancePersistError, match="text/html") as info:
        persist_video(f"{loopback.base_url}/html", tmp_path / "clip.mp4")

    assert info.value.reason == "content_type"
    assert _files_under(tmp_path) == []


def test_html_body_labelled_as_video_is_refused(loopback, tmp_path):
    with pytest.raises(SeedancePersistError, match="HTML") as info:
        persist_video(f"{loopback.base_url}/html?ctype=video/mp4", tmp_path / "clip.mp4")

    assert info.value.reason == "content_type"
    assert _files_under(tmp_path) == []


def test_html_is_refused_even_when_any_type_is_allowed(loopback, tmp_path):
    with pytest.raises(SeedancePersistError) as info:
        persist_video(f"{loopback.base_url}/html", tmp_path / "clip.mp4", allowed_content_types=None)

    assert info.value.reason == "content_type"


@pytest.mark.parametrize(("path", "allowed", "ok"), [
    ("/video?ctype=image/png", ("video/mp4",), False),
    ("/no-type", ("video/mp4",), False),
    ("/video?ctype=binary/octet-stream", None, True),
    ("/video?ctype=Video/MP4;%20codecs=avc1", ("video/mp4",), True),
])
def test_content_type_allow_list(loopback, tmp_path, path, allowed, ok):
    target = tmp_path / "clip.mp4"
    if ok:
        persist_video(loopback.base_url + path, target, allowed_content_types=allowed)
        assert target.exists()
    else:
        with pytest.raises(SeedancePersistError, match="Allowed") as info:
            persist_video(loopback.base_url + path, target, allowed_content_types=allowed)
        assert info.value.reason == "content_type"
        assert _files_under(tmp_path) == []


def test_declared_size_over_limit_is_refused_before_reading(loopback, tmp_path):
    with pytest.raises(SeedancePersistError, match=f"{10 * MiB} bytes") as info:
        persist_video(f"{loopback.base_url}/declared-huge?size={10 * MiB}", tmp_path / "clip.mp4", max_bytes=MiB)

    assert info.value.reason == "too_large"
    assert _files_under(tmp_path) == []


def test_undeclared_body_over_limit_is_cut_off(loopback, tmp_path):
    with pytest.raises(SeedancePersistError, match="max_bytes") as info:
        persist_video(
            f"{loopback.base_url}/unannounced?size={20 * MiB}", tmp_path / "clip.mp4",
            max_bytes=2 * MiB, chunk_size=64 * 1024,
        )

    assert info.value.reason == "too_large"
    assert _files_under(tmp_path) == []


def test_body_exactly_at_the_limit_is_accepted(loopback, tmp_path):
    target = tmp_path / "clip.mp4"
    persist_video(f"{loopback.base_url}/unannounced?size={MiB}", target, max_bytes=MiB)
    assert target.stat().st_size == MiB


def test_signed_url_tokens_stay_out_of_errors_and_logs(loopback, tmp_path, caplog):
    token = "SIGNATURE0123456789abcdef"
    url = f"{loopback.base_url}/status/403?X-Amz-Signature={token}&X-Amz-Credential=AKIAEXAMPLE12345"
    caplog.set_level(logging.INFO)

    with pytest.raises(SeedancePersistError) as info:
        persist_video(url, tmp_path / "clip.mp4")

    assert info.value.reason == "http"
    shown = str(info.value) + repr(info.value) + caplog.text
    assert "/status/403?X-Amz-Signature=***&X-Amz-Credential=***" in shown
    assert token not in shown
    assert "AKIAEXAMPLE12345" not in shown
    assert token not in _shown_in_traceback(info.value)
    # Anything else that logs the URL (urllib3 at DEBUG, a user's print) goes through Airflow's masker.
    from airflow.providers.common.compat.sdk import redact

    assert token not in str(redact(f"GET {url}"))


def test_connection_refused_names_no_token(tmp_path):
    import socket

    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(SeedancePersistError) as info:
        persist_video(f"http://127.0.0.1:{port}/v.mp4?token=SECRETSECRET123", tmp_path / "v.mp4", timeout=2)

    assert info.value.reason == "transport"
    # The requests error names the full URL: it must not ride along as the cause or context.
    assert "SECRETSECRET123" not in _shown_in_traceback(info.value)


@pytest.mark.parametrize("url", [
    "http://cdn.example.com/v.mp4",  # plain http to a real host
    "ftp://127.0.0.1/v.mp4",
    "file:///etc/passwd",
    "",
    None,
])
def test_bad_source_url_is_refused_without_a_request(loopback, tmp_path, url):
    with pytest.raises(SeedancePersistError, match="source_url") as info:
        persist_video(url, tmp_path / "v.mp4")

    assert info.value.reason == "url"
    assert loopback.served == []
    assert _files_under(tmp_path) == []


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"max_bytes": 0}, "max_bytes"),
    ({"chunk_size": -1}, "chunk_size"),
    ({"max_bytes": True}, "max_bytes"),
])
def test_bad_limits_are_named(loopback, tmp_path, kwargs, field):
    with pytest.raises(SeedancePersistError, match=field) as info:
        persist_video(f"{loopback.base_url}/video", tmp_path / "v.mp4", **kwargs)
    assert info.value.reason == "invalid"
    assert loopback.served == []


def test_directory_destination_is_refused(loopback, tmp_path):
    with pytest.raises(SeedancePersistError, match="directory"):
        persist_video(f"{loopback.base_url}/video", f"file://{tmp_path}/")


@pytest.mark.parametrize("form", ["{d}", "{d}/", "file://{d}", "file://{d}/"])
def test_an_existing_directory_is_refused_before_downloading_and_left_as_it_was(seedance_emulator, tmp_path, form):
    url = _finished_output_url(seedance_emulator)
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "old.mp4").write_bytes(b"kept")

    with pytest.raises(SeedancePersistError) as info:
        persist_video(url, form.format(d=videos))

    assert info.value.reason == "invalid"
    assert "Invalid destination" in str(info.value)
    assert "Allowed: a file path (not a directory)" in str(info.value)
    assert f"{videos}/video.mp4" in str(info.value)  # a file name is suggested
    assert _files_under(tmp_path) == ["videos/old.mp4"]  # no .part left inside, nothing replaced
    assert seedance_emulator.admin.requests(endpoint="files") == []  # refused before downloading


def test_the_field_name_is_the_callers(loopback, tmp_path):
    with pytest.raises(SeedancePersistError, match="Invalid persist_to") as info:
        persist_video(f"{loopback.base_url}/video", tmp_path, field="persist_to")
    assert info.value.reason == "invalid"
    assert loopback.served == []


@pytest.mark.parametrize(("url", "shown"), [
    ("https://u:p@cdn.example.com:8443/a/b.mp4?sig=1#frag", "https://***:***@cdn.example.com:8443/a/b.mp4?sig=***#***"),
    ("https://cdn.example.com/a.mp4", "https://cdn.example.com/a.mp4"),
    # A CDN token under a name no list knows: hidden by its shape; the expiry stays readable.
    ("https://cdn.example.com/a.mp4?hdnts=exp%3D1700000000~hmac%3D0a1b2c3d4e5f60718293a4b5c6d7e8f9&Expires=1700000000",
     "https://cdn.example.com/a.mp4?hdnts=***&Expires=1700000000"),
])
def test_the_one_redaction_hides_what_persist_used_to_hide(url, shown):
    assert redact_url(url) == shown


def test_storage_failure_is_reported_and_cleaned_up(loopback, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"a file where a directory should be")

    with pytest.raises(SeedancePersistError) as info:
        persist_video(f"{loopback.base_url}/video", blocker / "v.mp4")

    assert info.value.reason == "storage"
    assert _files_under(tmp_path) == ["not-a-dir"]
