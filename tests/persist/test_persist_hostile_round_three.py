"""persist_video, fresh-eyes review after round two (issue 23), on 127.0.0.1.

A redirect whose ``Location`` is not UTF-8: requests' ``get_redirect_target`` raised a bare
``UnicodeDecodeError`` (no :class:`SeedancePersistError`, no ``reason``) whose arguments held the header
whole, a signed URL's signature included.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from airflow_provider_seedance.persist import SeedancePersistError, persist_video

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hook"))
from scripted_server import Reply, Request, ScriptedServer
from test_persist_hostile import bounded
from test_persist_hostile import scripted as scripted  # the fixture

SIGNATURE = "Sig0123456789abcdefghijklmnopqrstuv"


def test_a_location_that_is_not_utf8_is_refused_without_the_signature(
    scripted: Callable[[Callable[[Request], Reply]], ScriptedServer], tmp_path: Path,
) -> None:
    def handler(request: Request) -> Reply:
        return Reply(b"HTTP/1.1 302 Found\r\nLocation: /v\xff\xfe.mp4?X-Amz-Signature=" + SIGNATURE.encode()
                     + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", close=True)

    server = scripted(handler)
    outcome = bounded(lambda: persist_video(f"{server.base_url}/start", tmp_path / "v.mp4", timeout=5))
    assert isinstance(outcome, SeedancePersistError), repr(outcome)
    assert outcome.reason == "redirect"
    assert SIGNATURE not in repr(outcome) + repr(outcome.args) + str(outcome)
    assert not (tmp_path / "v.mp4").exists()
