"""TLS contexts built when many waits start at once (issue 22): the goal is one per CA file, none for plain http.

The emulator is put behind a TLS front on 127.0.0.1 (its own process; a throw-away CA and server certificate
made with ``cryptography``), and a child process starts N waits at once (N fresh ``SeedanceHook``\\ s, N first
polls, as a triggerer restart does) against:

- ``http``: the emulator itself (plain http: no context should be built);
- ``https, 1 CA file``: the TLS front, the connection's ``ca_bundle`` extra naming the CA file;
- ``https, 2 CA files``: half the waits on a second connection whose ``ca_bundle`` is a copy of the CA under
  another path (two files: two contexts).

In the child only, after its imports, ``ssl.create_default_context``, ``ssl.SSLContext`` construction and
``SSLContext.load_verify_locations`` (the CA file's parse, the costly part) are counted. ``--tree DIR`` runs the
child against another checkout too (before/after). Standalone: ``python benchmarks/tls_contexts.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _env import isolate_airflow_home

__all__ = ["measure_tls_contexts"]

HERE = Path(__file__).resolve().parent


def make_certificates(directory: str) -> tuple[str, str, str]:
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it; (ca.pem, cert.pem, key.pem).

    :param directory: where to write them.
    """
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "seedance bench CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False),
                         critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tuple(os.path.join(directory, name) for name in ("ca.pem", "cert.pem", "key.pem"))
    Path(paths[0]).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(paths[1]).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(paths[2]).write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))
    return paths  # type: ignore[return-value]


def tls_front(cert: str, key: str, upstream_port: int, port_file: str) -> None:
    """Terminate TLS on 127.0.0.1 and pipe each connection to the emulator's plain port.

    :param cert: server certificate (PEM).
    :param key: its key.
    :param upstream_port: the emulator's port on 127.0.0.1.
    :param port_file: where to write the listening port.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context, backlog=2048)
        port = str(server.sockets[0].getsockname()[1])
        await asyncio.to_thread(Path(port_file).write_text, port, encoding="utf-8")
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _count_tls() -> dict[str, int]:
    # Installed after the imports (aiohttp builds its own default contexts when imported: not ours).
    counts = {"create_default_context": 0, "SSLContext()": 0, "load_verify_locations": 0}
    create, new, load = ssl.create_default_context, ssl.SSLContext.__new__, ssl.SSLContext.load_verify_locations

    def counted_create(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        counts["create_default_context"] += 1
        return create(*args, **kwargs)

    def counted_new(cls: type, *args: Any, **kwargs: Any) -> ssl.SSLContext:
        counts["SSLContext()"] += 1
        return new(cls, *args, **kwargs)

    def counted_load(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        counts["load_verify_locations"] += 1
        load(self, *args, **kwargs)

    ssl.create_default_context = counted_create  # type: ignore[assignment]
    ssl.SSLContext.__new__ = counted_new  # type: ignore[method-assign,assignment]
    ssl.SSLContext.load_verify_locations = counted_load  # type: ignore[method-assign]
    return counts


async def _start_waits(conn_ids: list[str], ids: list[str], n: int) -> tuple[int, float]:
    from airflow_provider_seedance.errors import SeedanceError
    from airflow_provider_seedance.hooks.seedance import SeedanceHook

    errors = 0

    async def one(i: int) -> Any:
        nonlocal errors
        hook = SeedanceHook(seedance_conn_id=conn_ids[i % len(conn_ids)])
        try:
            await hook.aget_job(ids[i % len(ids)])
        except (SeedanceError, TimeoutError):
            errors += 1
        return hook

    started = time.perf_counter()
    hooks = await asyncio.gather(*(one(i) for i in range(n)))
    seconds = time.perf_counter() - started
    for hook in hooks:
        await hook.aclose()
    return errors, seconds


def _child(spec: dict[str, Any]) -> dict[str, Any]:
    import airflow_provider_seedance
    import airflow_provider_seedance.hooks.seedance

    counts = _count_tls()
    errors, seconds = asyncio.run(_start_waits(spec["conn_ids"], spec["ids"], spec["n"]))
    return {"tree": str(Path(airflow_provider_seedance.__file__).resolve().parent.parent), "errors": errors,
            "seconds": seconds, **counts}


def measure_tls_contexts(n: int = 1000, trees: list[str | None] | None = None) -> list[dict[str, Any]]:
    """Run the three scenarios with ``n`` waits each, per source tree; one row per (tree, scenario).

    :param n: waits starting at once.
    :param trees: checkouts to import the provider from (None: the installed one).
    """
    from poll_peer import submit_jobs

    from airflow_provider_seedance.emulator.testing import spawn_emulator

    rows = []
    with tempfile.TemporaryDirectory() as tmp, spawn_emulator(time_scale=10_000.0, balance=10**12) as emu:
        emu.admin.configure(log_limit=1)
        ca, cert, key = make_certificates(tmp)
        ca_copy = os.path.join(tmp, "ca-copy.pem")
        shutil.copy(ca, ca_copy)
        port_file = os.path.join(tmp, "port")
        emu_port = int(emu.base_url.rsplit(":", 1)[1])
        front = subprocess.Popen([sys.executable, str(HERE / "tls_contexts.py"), "--front", cert, key,
                                  str(emu_port), port_file])
        try:
            deadline = time.time() + 30
            while not os.path.exists(port_file) or not Path(port_file).read_text(encoding="utf-8"):
                if time.time() > deadline or front.poll() is not None:
                    raise RuntimeError("the TLS front did not start")
                time.sleep(0.05)
            tls_url = f"https://127.0.0.1:{Path(port_file).read_text(encoding='utf-8')}"
            ids = submit_jobs(emu, 20)

            def conn(host: str, ca_file: str | None) -> str:
                extra = {"ca_bundle": ca_file} if ca_file else {}
                return json.dumps({"conn_type": "seedance", "host": host, "password": emu.api_key, "extra": extra})

            env = dict(os.environ, AIRFLOW_CONN_SEEDANCE_HTTP=conn(emu.base_url, None),
                       AIRFLOW_CONN_SEEDANCE_TLS_A=conn(tls_url, ca),
                       AIRFLOW_CONN_SEEDANCE_TLS_B=conn(tls_url, ca_copy))
            scenarios = {"http": ["seedance_http"], "https, 1 CA file": ["seedance_tls_a"],
                         "https, 2 CA files": ["seedance_tls_a", "seedance_tls_b"]}
            for tree in trees or [None]:
                tree_env = dict(env)
                if tree:
                    tree_env["PYTHONPATH"] = os.pathsep.join(p for p in (tree, env.get("PYTHONPATH", "")) if p)
                for name, conn_ids in scenarios.items():
                    spec = {"conn_ids": conn_ids, "ids": ids, "n": n}
                    proc = subprocess.run([sys.executable, str(HERE / "tls_contexts.py"), "--child"],
                                          input=json.dumps(spec), env=tree_env, capture_output=True, text=True,
                                          timeout=600)
                    if proc.returncode != 0:
                        rows.append({"tree": tree, "scenario": name, "failed": proc.stderr[-2000:]})
                        continue
                    rows.append({"scenario": name, "n": n, **json.loads(proc.stdout.strip().splitlines()[-1])})
        finally:
            front.terminate()
            front.wait(timeout=10)
    return rows


def print_rows(rows: list[dict[str, Any]]) -> None:
    """Print the table.

    :param rows: what :func:`measure_tls_contexts` returned.
    """
    print("\nTLS contexts built when N waits start at once (goal: 1 per CA file, 0 for plain http)")
    print(f"{'tree':32s} {'scenario':18s} {'N':>5s} {'create_default':>14s} {'SSLContext()':>12s} "
          f"{'load_verify':>11s} {'errors':>6s} {'wall s':>7s}")
    for r in rows:
        if "failed" in r:
            print(f"{str(r['tree'])[-32:]:32s} {r['scenario']:18s} failed: {r['failed'][-300:]}")
            continue
        print(f"{r['tree'][-32:]:32s} {r['scenario']:18s} {r['n']:5d} {r['create_default_context']:14d} "
              f"{r['SSLContext()']:12d} {r['load_verify_locations']:11d} {r['errors']:6d} {r['seconds']:7.2f}")


def main(argv: list[str] | None = None) -> int:
    """Command line.

    :param argv: arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--tree", action="append", default=[], help="also run against this checkout")
    parser.add_argument("--front", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.front:
        cert, key, upstream, port_file = args.front
        tls_front(cert, key, int(upstream), port_file)
        return 0
    if args.child:
        print(json.dumps(_child(json.loads(sys.stdin.read()))))
        return 0
    isolate_airflow_home()
    print_rows(measure_tls_contexts(args.n, [None, *args.tree]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
