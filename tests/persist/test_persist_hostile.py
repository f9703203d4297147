"""persist_video against hostile servers (round two), all on 127.0.0.1.

- a server dripping its headers, or its body, a byte at a time: the download ends at ``timeout`` (one
  deadline on the socket, not requests' per-read timeout);
- a redirect (or the source URL itself) to a loopback, private or link-local address, in any spelling:
  refused before connecting; the "private" cases resolve through a fake ``getaddrinfo`` and a guard
  refuses any non-loopback connect, so even a regression sends nothing off this machine;
- a caller's session credentials are not sent on to another host a redirect names.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests

from airflow_provider_seedance.persist import SeedancePersistError, persist_video

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hook"))
from scripted_server import Reply, ScriptedServer, drip

MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 4096
GUARD = 20.0  # seconds: far above every deadline below; only stops a regression from hanging the suite


def bounded(call: Callable[[], Any]) -> BaseException | Any:
    """Run ``call`` in a thread; its exception or result. Fails the test if it is still running at GUARD."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GUARD)
    assert not thread.is_alive(), f"persist_video was still downloading after {GUARD:g} s"
    return outcome[0]


@pytest.fixture
def scripted() -> Iterator[Callable[[Callable[..., Reply]], ScriptedServer]]:
    servers: list[ScriptedServer] = []

    def start(handler: Callable[..., Reply]) -> ScriptedServer:
        servers.append(ScriptedServer(handler).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
        % len(MP4[:400]))


@pytest.mark.parametrize("dripped", ["headers", "body"])
def test_a_dripping_server_is_cut_off_at_the_timeout(scripted, tmp_path: Path, dripped: str) -> None:
    # 0.1 s a byte: 400+ bytes would take 40 s; with timeout=1 the download must end long before GUARD.
    if dripped == "headers":
        server = scripted(lambda request: Reply(drip(HEAD + MP4[:400], 0.1), close=True))
    else:
        def slow_body(sock: socket.socket) -> None:
            sock.sendall(HEAD)
            drip(MP4[:400], 0.1)(sock)

        server = scripted(lambda request: Reply(slow_body, close=True))

    outcome = bounded(lambda: persist_video(f"{server.base_url}/v.mp4", tmp_path / "v.mp4", timeout=1))

    assert isinstance(outcome, SeedancePersistError), outcome
    assert outcome.reason == "timeout"
    assert "timeout=1 s" in str(outcome)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no video, no .part left


def test_the_deadline_bounds_a_body_that_keeps_coming(scripted, tmp_path: Path) -> None:
    # 64 KiB every 0.3 s is progress (never a stall at timeout=1), but deadline=1.5 ends the whole download.
    piece = 64 * 1024

    def steady(sock: socket.socket) -> None:
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: %d\r\n\r\n" % (100 * piece))
        sock.sendall(MP4[:32])
        for _ in range(100):
            try:
                sock.sendall(b"\x00" * piece)
            except OSError:
                return
            threading.Event().wait(0.3)

    server = scripted(lambda request: Reply(steady, close=True))
    outcome = bounded(lambda: persist_video(f"{server.base_url}/v.mp4", tmp_path / "v.mp4", timeout=1,
                                            deadline=1.5))

    assert isinstance(outcome, SeedancePersistError), outcome
    assert outcome.reason == "timeout"
    assert "deadline=1.5 s" in str(outcome)


# -- #4: private and loopback addresses, whatever their spelling ------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """``/to?location=...``: 302 there; ``/video``: an MP4. Records path and headers."""

    protocol_version = "HTTP/1.1"
    seen: list[dict[str, Any]]

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
        parts = urlsplit(self.path)
        if parts.path == "/to":
            self.send_response(302)
            self.send_header("Location", parse_qs(parts.query)["location"][0])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(MP4)))
        self.end_headers()
        self.wfile.write(MP4)


class _Server:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[dict[str, Any]] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Handler,), {"seen": self.seen}))
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _tls_context(tmp_path: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    return context


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[_Server, _Server]]:
    """An http origin and an https "internal service" (self-signed), both on 127.0.0.1."""
    origin, internal = _Server(), _Server(_tls_context(tmp_path))
    yield origin, internal
    origin.close()
    internal.close()


#: An /etc/hosts-like mapping for the test; anything else resolves for real (loopback literals only here).
HOSTS = {"internal.test": "127.0.0.1", "intranet.test": "10.1.2.3", "metadata.test": "169.254.169.254",
         "ula.test": "fd00::5", "mapped.test": "::ffff:10.0.0.1", "cgnat.test": "100.64.0.1"}


@pytest.fixture
def fake_hosts(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Resolve HOSTS names, and refuse (and record) any connect to a non-loopback address."""
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    attempts: list[Any] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host in HOSTS:
            address = HOSTS[host]
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, int(port or 0), 0, 0) if family == socket.AF_INET6 else (address, int(port or 0))
            return [(family, socket.SOCK_STREAM, 6, "", sockaddr)]
        return real_getaddrinfo(host, port, *args, **kwargs)

    def connect(self: socket.socket, address: Any) -> Any:
        host = str(address[0]) if isinstance(address, tuple) else ""
        try:
            loopback = ipaddress.ip_address(host).is_loopback or (
                ipaddress.ip_address(host).version == 6 and ipaddress.ip_address(host).ipv4_mapped is not None
                and ipaddress.ip_address(host).ipv4_mapped.is_loopback)  # type: ignore[union-attr]
        except ValueError:
            loopback = False
        if not loopback:
            attempts.append(address)
            raise OSError(f"test guard: no traffic to {host}")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


def _insecure_session() -> requests.Session:
    session = requests.Session()
    # The test's self-signed "internal service": TLS must not be what stops the download (REQUESTS_CA_BUNDLE
    # from the environment would win over verify=False).
    session.trust_env = False
    session.verify = False
    return session


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("host", ["internal.test", "127.1", "2130706433", "0x7f.0.0.1", "0.0.0.0",
                                  "[::ffff:127.0.0.1]", "127.0.0.1:{port}\\@cdn.example.com"])
def test_a_redirect_to_a_loopback_service_in_any_spelling_is_refused(
    servers: tuple[_Server, _Server], fake_hosts: list[Any], tmp_path: Path, host: str
) -> None:
    origin, internal = servers
    netloc = host.format(port=internal.port) if "{port}" in host else f"{host}:{internal.port}"
    target = f"https://{netloc}/video"
    source = f"http://127.0.0.1:{origin.port}/to?location={quote(target, safe='')}"

    with pytest.raises(SeedancePersistError) as info:
        persist_video(source, tmp_path / "v.mp4", session=_insecure_session())

    assert info.value.reason == "redirect", info.value
    assert "Redirect hop 1" in str(info.value)
    assert internal.seen == []  # the internal service was never asked
    assert not (tmp_path / "v.mp4").exists()


@pytest.mark.parametrize(("host", "why"), [
    ("intranet.test", "private"), ("metadata.test", "link-local"), ("ula.test", "private"),
    ("mapped.test", "private"), ("cgnat.test", "non-public"), ("10.0.0.1", "private"),
    ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("169.254.169.254", "link-local"),
    ("[fc00::1]", "private"), ("[::ffff:192.168.0.1]", "private"), ("224.0.0.1", "multicast"),
])
@pytest.mark.parametrize("where", ["source", "redirect"])
def test_a_private_address_is_refused_before_any_connection(
    servers: tuple[_Server, _Server], fake_hosts: list[Any], tmp_path: Path, host: str, why: str, where: str
) -> None:
    origin, _ = servers
    target = f"https://{host}/video.mp4"
    source = target if where == "source" else f"http://127.0.0.1:{origin.port}/to?location={quote(target, safe='')}"

    with pytest.raises(SeedancePersistError) as info:
        persist_video(source, tmp_path / "v.mp4")

    assert info.value.reason == ("url" if where == "source" else "redirect"), info.value
    assert f"{why} address" in str(info.value)
    assert fake_hosts == []  # refused on the address, before any connect


# -- #11: a caller's credentials stay with the source URL's host ------------------------------------------


def test_session_credentials_are_not_sent_to_another_host(servers: tuple[_Server, _Server], tmp_path: Path) -> None:
    origin, _ = servers
    other = _Server()
    try:
        session = requests.Session()
        session.headers.update({"Authorization": "Bearer sd2_CallerSecret0123456789", "Cookie": "sid=CallerCookie",
                                "Proxy-Authorization": "Basic Q2FsbGVy"})
        target = f"http://localhost:{other.port}/video"
        persist_video(f"http://127.0.0.1:{origin.port}/to?location={quote(target, safe='')}", tmp_path / "v.mp4",
                      session=session)
    finally:
        other.close()

    assert origin.seen[0]["headers"]["authorization"] == "Bearer sd2_CallerSecret0123456789"  # its own host
    assert [sorted(set(r["headers"]) & {"authorization", "cookie", "proxy-authorization"}) for r in other.seen] == [[]]
    assert (tmp_path / "v.mp4").read_bytes() == MP4
