"""Hook test fixtures: the emulator as the default connection, fast retry policy, loopback servers."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_seedance.emulator.testing import EmulatorHandle
from airflow_provider_seedance.hooks.seedance import RetryPolicy, SeedanceHook

#: Tiny waits so retry tests stay fast; attempts and total time still bounded.
FAST = RetryPolicy(max_attempts=4, max_total_seconds=20.0, initial_wait=0.01, max_wait=0.02, jitter=0.005)


@pytest.fixture
def make_hook() -> Iterator[Callable[..., SeedanceHook]]:
    """Build hooks with the fast policy; their sync sessions are closed after the test."""
    hooks: list[SeedanceHook] = []

    def make(conn_id: str = "seedance_default", **kwargs: Any) -> SeedanceHook:
        kwargs.setdefault("retry_policy", FAST)
        kwargs.setdefault("timeout", 10.0)
        hook = SeedanceHook(conn_id, **kwargs)
        hooks.append(hook)
        return hook

    yield make
    for hook in hooks:
        hook.close()


@pytest.fixture
def hook(emu: EmulatorHandle, make_hook: Callable[..., SeedanceHook]) -> SeedanceHook:
    """A hook on the emulator."""
    return make_hook()


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    """Define an Airflow connection through its environment variable (JSON form).

    :param monkeypatch: pytest's monkeypatch.
    :param conn_id: the connection id.
    :param fields: conn_type defaults to seedance; host, password, extra...
    """
    fields.setdefault("conn_type", "seedance")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RecordingServer:
    """A loopback HTTP(S) server that records every request and answers with a fixed JSON reply."""

    status: int = 404
    body: Any = field(default_factory=lambda: {"success": False, "error": {"code": "not_found", "message": "nope"}})
    headers: dict[str, str] = field(default_factory=dict)
    seen: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""


@pytest.fixture
def recording_server() -> Iterator[Callable[..., RecordingServer]]:
    """Start :class:`RecordingServer` instances (``tls_context=`` for https); stopped after the test."""
    servers: list[ThreadingHTTPServer] = []

    def start(tls_context: ssl.SSLContext | None = None, **kwargs: Any) -> RecordingServer:
        record = RecordingServer(**kwargs)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                record.seen.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                     "body": raw.decode("utf-8", "replace")}
                )
                payload = json.dumps(record.body).encode()
                self.send_response(record.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in record.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if tls_context is not None:
            server.socket = tls_context.wrap_socket(server.socket, server_side=True)
        scheme = "https" if tls_context is not None else "http"
        record.base_url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return record

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def self_signed_tls(tmp_path: Path) -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1 (no CA trusts it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context
