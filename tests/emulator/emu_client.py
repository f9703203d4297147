"""Client helpers for the emulator's tests: plain requests and a stdlib webhook receiver (not the hook)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from airflow_provider_seedance.emulator.testing import EmulatorHandle

GENERATIONS = "/api/open/v1/video/generations"
I2V = {
    "model": "seedance-2.0",
    "prompt": "A young woman blows out birthday candles, warm indoor lighting",
    "mediaUrls": ["https://example.com/photo.jpg"],
    "aspectRatio": "16:9",
    "duration": 5,
    "resolution": "720p",
}
T2V = {k: v for k, v in I2V.items() if k != "mediaUrls"}



class Api:
    """A tiny client of the emulated API (requests, one keep-alive session).

    :param emu: the running emulator.
    :param key: bearer key (None: no Authorization header).
    """

    def __init__(self, emu: EmulatorHandle, key: str | None = "default") -> None:
        self.emu = emu
        self.session = requests.Session()
        if key is not None:
            self.session.headers["Authorization"] = "Bearer " + (emu.api_key if key == "default" else key)

    def submit(self, body: Any = None, **changes: Any) -> requests.Response:
        payload = dict(I2V if body is None else body, **changes)
        return self.session.post(self.emu.base_url + GENERATIONS, json=payload, timeout=10)

    def submit_ok(self, body: Any = None, **changes: Any) -> str:
        resp = self.submit(body, **changes)
        assert resp.status_code == 200, resp.text
        return resp.json()["requestId"]

    def get(self, request_id: str) -> requests.Response:
        return self.session.get(f"{self.emu.base_url}{GENERATIONS}/{request_id}", timeout=10)

    def cancel(self, request_id: str) -> requests.Response:
        return self.session.post(f"{self.emu.base_url}{GENERATIONS}/{request_id}/cancel", timeout=10)

    def models(self) -> requests.Response:
        return self.session.get(self.emu.base_url + "/api/open/v1/models", timeout=10)

    def wait_status(self, request_id: str, statuses: set[str], timeout: float = 20.0) -> dict[str, Any]:
        """Poll until the job reports one of ``statuses`` (a generous bound, never asserted as a time)."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.get(request_id).json()
            if body["status"] in statuses:
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"{request_id} stuck in {body['status']}")
            time.sleep(0.01)




class Receiver:
    """A webhook receiver on 127.0.0.1 that answers with scripted statuses (then 200)."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.script: list[int] = []
        self.event = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                code = receiver.script.pop(0) if receiver.script else 200
                receiver.calls.append({"path": self.path, "body": json.loads(body), "answered": code,
                                       "content_type": self.headers.get("Content-Type")})
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if code == 200:
                    receiver.event.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
