"""persist_video and redirects, against real HTTP servers: every hop is checked with the source URL's rules.

Two servers: ``origin`` on 127.0.0.1 (the source URL, allowed over plain http as the emulator is) and
``elsewhere``, listening on every interface and reached through a *non-loopback* address of this machine
over plain http: the stand-in for a cloud metadata address (``http://169.254.169.254/...``). It serves a
valid video, so a download that followed the redirect would succeed and save it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from airflow_provider_seedance.persist import MAX_REDIRECTS, SeedancePersistError, check_redirect, persist_video

MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 4096


class _Recorder(BaseHTTPRequestHandler):
    """``/to?location=...``: 302 there; ``/loop``: 302 to itself, forever; ``/video``: an MP4."""

    protocol_version = "HTTP/1.1"
    served: list[str]

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self.served.append(self.path)
        parts = urlsplit(self.path)
        if parts.path == "/to":
            self._redirect(parse_qs(parts.query)["location"][0])
        elif parts.path == "/loop":
            self._redirect("/loop")
        elif parts.path == "/video":
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(len(MP4)))
            self.end_headers()
            self.wfile.write(MP4)
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Server:
    def __init__(self, bind: str) -> None:
        self.served: list[str] = []
        handler = type("Handler", (_Recorder,), {"served": self.served})
        self.httpd = ThreadingHTTPServer((bind, 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def origin() -> Iterator[_Server]:
    server = _Server("127.0.0.1")
    yield server
    server.close()


@pytest.fixture
def elsewhere() -> Iterator[_Server]:
    server = _Server("127.0.0.1")  # what a follow would reach if the name below pointed here
    yield server
    server.close()


def _files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def test_a_redirect_to_plain_http_on_another_host_is_refused_before_anything_is_fetched(
    origin: _Server, elsewhere: _Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = "SIGNATURE0123456789abcdefXYZ"
    # A remote name: refused for its plain http before it is resolved or connected to (test traffic stays on
    # loopback; this machine's own interface address is never a target).
    target = f"http://video.example.test:{elsewhere.port}/video?X-Amz-Signature={token}"
    caplog.set_level(logging.INFO)

    with pytest.raises(SeedancePersistError) as info:
        persist_video(f"http://127.0.0.1:{origin.port}/to?location={quote(target, safe='')}", tmp_path / "v.mp4")

    assert info.value.reason == "redirect"
    assert "Redirect hop 1" in str(info.value)
    assert "plain http:// is followed only to localhost" in str(info.value)
    assert f":{elsewhere.port}/video?X-Amz-Signature=***" in str(info.value)  # the hop named, redacted
    assert token not in str(info.value) + caplog.text
    assert elsewhere.served == []  # nothing was requested from the other host
    assert _files_under(tmp_path) == []  # and nothing saved


def test_redirects_are_bounded_and_the_error_names_the_hop(origin: _Server, tmp_path: Path) -> None:
    with pytest.raises(SeedancePersistError) as info:
        persist_video(f"http://127.0.0.1:{origin.port}/loop", tmp_path / "v.mp4")

    assert info.value.reason == "redirect"
    assert f"Redirect hop {MAX_REDIRECTS + 1}" in str(info.value)
    assert f"more than {MAX_REDIRECTS} redirects" in str(info.value)
    assert len(origin.served) == MAX_REDIRECTS + 1  # the source URL and the 5 redirects it allowed
    assert _files_under(tmp_path) == []


def test_allowed_redirects_are_followed_relative_and_absolute(origin: _Server, tmp_path: Path) -> None:
    second = f"http://127.0.0.1:{origin.port}/to?location={quote('/video', safe='')}"  # relative Location
    target = tmp_path / "v.mp4"

    uri = persist_video(f"http://localhost:{origin.port}/to?location={quote(second, safe='')}", target)

    assert uri == f"file://{target}"
    assert target.read_bytes() == MP4
    assert [urlsplit(p).path for p in origin.served] == ["/to", "/to", "/video"]


@pytest.mark.parametrize(("location", "current", "why"), [
    ("http://cdn.example.com/v.mp4", "https://cdn.example.com/a", "plain http:// is followed only to localhost"),
    ("http://169.254.169.254/latest/meta-data/", "https://cdn.example.com/a", "only to localhost"),
    ("http://127.0.0.1:8080/v.mp4", "https://cdn.example.com/a", "a step down from https to http"),
    ("https://localhost/admin", "https://cdn.example.com/a", "a remote URL may not redirect to this machine"),
    ("https://[::1]/admin", "https://cdn.example.com/a", "a remote URL may not redirect to this machine"),
    ("file:///etc/passwd", "https://cdn.example.com/a", "only https:// is followed"),
    ("ftp://cdn.example.com/v.mp4", "https://cdn.example.com/a", "only https:// is followed"),
])
def test_hop_rules(location: str, current: str, why: str) -> None:
    with pytest.raises(SeedancePersistError, match="Redirect hop 2") as info:
        check_redirect(location, current, "https://cdn.example.com/a", 2)
    assert info.value.reason == "redirect"
    assert why in str(info.value)


def test_a_hop_back_to_loopback_needs_every_earlier_url_on_loopback() -> None:
    source = "http://127.0.0.1:1/a"
    assert check_redirect("/b", source, source, 1) == "http://127.0.0.1:1/b"
    assert check_redirect("https://edge.example.com/v.mp4", source, source, 1) == "https://edge.example.com/v.mp4"
    with pytest.raises(SeedancePersistError, match="a step down from https to http"):
        check_redirect("http://127.0.0.1:1/c", "https://edge.example.com/v.mp4", source, 2)
