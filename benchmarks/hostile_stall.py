"""Issue 23's stall: how long one hostile 4 MiB answer blocks the triggerer's event loop, and the event it makes.

A scripted server (its own process, on 127.0.0.1) answers every status check with a body just under the hook's
4 MiB cap:

- ``http400``: HTTP 400, the vendor's error shape, its message 4 MiB of URLs (with signed-looking queries);
- ``http500``: the same with HTTP 500 (retried, then waited through until the wait's deadline);
- ``valid``: HTTP 200, a well-formed ``failed`` status whose ``error`` is 4 MiB of URLs (a terminal answer).

A ``SeedanceJobTrigger`` waits on each while a heartbeat coroutine sleeps 5 ms in a loop in the same event
loop; the worst gap beyond the 5 ms is the stall. Printed: the worst stall, the answers served, and the size
of the ``TriggerEvent`` payload (JSON). The goal in the issue is a stall under 100 ms per answer.

``--tree DIR`` also runs the same child against another checkout (e.g. ``git worktree add /tmp/before
31e5da5``; imported through ``PYTHONPATH``) for a before/after. Standalone: ``python benchmarks/hostile_stall.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from _env import isolate_airflow_home

__all__ = ["SCENARIOS", "measure_stalls"]

HERE = Path(__file__).resolve().parent
SCENARIOS = ("http400", "http500", "valid", "objects4m", "objectscap")
CAP = 4 * 1024 * 1024
API_KEY = "sd2_stall_bench_key"


def _urls(size: int) -> str:
    # URLs with query strings: what the redaction of a message works hardest on.
    unit = "see https://cdn.example.com/v/{:07d}/out.mp4?X-Amz-Signature=0123456789abcdef&token=abc#frag "
    parts, total, i = [], 0, 0
    while total < size:
        piece = unit.format(i)
        parts.append(piece)
        total += len(piece)
        i += 1
    return "".join(parts)[:size]


def _bodies() -> dict[str, tuple[int, bytes]]:
    def fill(template: dict[str, Any], put: Any) -> bytes:
        empty = len(json.dumps(template).encode())
        put(_urls(CAP - empty - 512))
        return json.dumps(template).encode()

    error: dict[str, Any] = {"success": False, "error": {"code": "invalid_request", "message": ""}}
    err_body = fill(error, lambda text: error["error"].__setitem__("message", text))
    valid: dict[str, Any] = {"success": True, "requestId": "valid", "status": "failed", "model": "seedance-2.0",
                             "error": ""}
    valid_body = fill(valid, lambda text: valid.__setitem__("error", text))
    return {"http400": (400, err_body), "http500": (500, err_body), "valid": (200, valid_body),
            # The shape json.loads and the key scrub work hardest on per byte (small objects, one JSON escape,
            # one %), found by the round-three review: 4 MiB of it, and just under the job-answer cap.
            "objects4m": (200, _objects("objects4m", CAP - 512)),
            "objectscap": (200, _objects("objectscap", _job_answer_cap() - 512))}


def _job_answer_cap() -> int:
    from airflow_provider_seedance.hooks._transport import MAX_JOB_ANSWER_BYTES

    return MAX_JOB_ANSWER_BYTES


def _objects(request_id: str, size: int) -> bytes:
    count = size // 9
    while True:
        body = json.dumps({"success": True, "requestId": request_id, "status": "processing", "x": "%41\u0041",
                           "junk": [{"a": i} for i in range(count)]}).encode()
        if len(body) <= size:
            return body
        count = int(count * 0.97)


def serve(port_file: str) -> None:
    """The scripted server: the scenario is the last path segment (the request id); ``/__count`` = answers.

    :param port_file: where to write the port once listening.
    """
    bodies = _bodies()
    count = [0]
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            name = self.path.rstrip("/").rsplit("/", 1)[-1]
            if name == "__count":
                status, body = 200, json.dumps({"count": count[0]}).encode()
            else:
                status, body = bodies.get(name, (404, b'{"success": false, "error": "no such scenario"}'))
                with lock:
                    count[0] += 1
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(ConnectionError):  # a client refusing an oversized answer hangs up early
                self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Path(port_file).write_text(str(server.server_address[1]), encoding="utf-8")
    server.serve_forever()


def _answers(port: int) -> int:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__count", timeout=10) as resp:
        return int(json.loads(resp.read())["count"])


async def _run_one(scenario: str, port: int, wait_seconds: float) -> dict[str, Any]:
    from airflow_provider_seedance.triggers.seedance import SeedanceJobTrigger

    worst, stop = [0.0], asyncio.Event()

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            worst[0] = max(worst[0], now - last - 0.005)
            last = now

    before = await asyncio.to_thread(_answers, port)
    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.05)
    trigger = SeedanceJobTrigger(scenario, deadline=time.time() + wait_seconds, poll_interval=1.0,
                                 max_poll_interval=1.0, owns_job=False)
    started = time.perf_counter()
    events = [event async for event in trigger.run()]
    elapsed = time.perf_counter() - started
    stop.set()
    await beat
    answers = await asyncio.to_thread(_answers, port) - before
    payload = events[0].payload if events else None
    return {"scenario": scenario, "worst_stall_ms": worst[0] * 1000.0, "answers": answers,
            "event": payload.get("event") if isinstance(payload, dict) else None,
            "event_payload_bytes": len(json.dumps(payload, default=str).encode()) if payload is not None else 0,
            "seconds": elapsed}


def _child(port: int, wait_seconds: float) -> dict[str, Any]:
    os.environ["AIRFLOW_CONN_SEEDANCE_DEFAULT"] = json.dumps(
        {"conn_type": "seedance", "host": f"http://127.0.0.1:{port}", "password": API_KEY})
    import airflow_provider_seedance
    import airflow_provider_seedance.hooks.seedance

    results = [asyncio.run(_run_one(s, port, wait_seconds)) for s in SCENARIOS]
    return {"tree": str(Path(airflow_provider_seedance.__file__).resolve().parent.parent), "results": results}


def measure_stalls(trees: list[str | None], wait_seconds: float = 4.0) -> list[dict[str, Any]]:
    """Start the server, run the child once per source tree (None: this checkout); one result per tree.

    :param trees: checkouts to import the provider from (None: the installed one).
    :param wait_seconds: each wait's deadline (the 500 scenario is waited through until then).
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "port")
        server = subprocess.Popen([sys.executable, str(HERE / "hostile_stall.py"), "--serve", port_file])
        try:
            deadline = time.time() + 60
            while not os.path.exists(port_file) or not Path(port_file).read_text(encoding="utf-8"):
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("the scripted server did not start")
                time.sleep(0.05)
            port = int(Path(port_file).read_text(encoding="utf-8"))
            out = []
            for tree in trees:
                env = dict(os.environ)
                if tree:
                    env["PYTHONPATH"] = os.pathsep.join(p for p in (tree, env.get("PYTHONPATH", "")) if p)
                cmd = [sys.executable, str(HERE / "hostile_stall.py"), "--child", str(port),
                       "--wait-seconds", str(wait_seconds)]
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
                if proc.returncode != 0:
                    out.append({"tree": tree, "failed": proc.stderr[-2000:]})
                    continue
                out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            return out
        finally:
            server.terminate()
            server.wait(timeout=10)


def print_stalls(runs: list[dict[str, Any]]) -> None:
    """Print a table per source tree.

    :param runs: what :func:`measure_stalls` returned.
    """
    for run in runs:
        print(f"\nEvent-loop stall per hostile 4 MiB answer ({run['tree']}); goal < 100 ms")
        if "failed" in run:
            print("  failed:", run["failed"])
            continue
        print(f"{'answer':10s} {'worst stall ms':>15s} {'answers':>8s} {'event':>8s} {'payload bytes':>14s}")
        for r in run["results"]:
            print(f"{r['scenario']:10s} {r['worst_stall_ms']:15.1f} {r['answers']:8d} {r['event'] or '-':>8s} "
                  f"{r['event_payload_bytes']:14,d}")


def main(argv: list[str] | None = None) -> int:
    """Command line.

    :param argv: arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], help="also run against this checkout")
    parser.add_argument("--wait-seconds", type=float, default=4.0)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    if args.child:
        print(json.dumps(_child(args.child, args.wait_seconds)))
        return 0
    isolate_airflow_home()
    print_stalls(measure_stalls([None, *args.tree], args.wait_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
