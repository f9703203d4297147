"""Command line: ``seedance-emulator --port 8787`` / ``python -m airflow_provider_seedance.emulator``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

_STARTED = time.perf_counter()


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    parser = argparse.ArgumentParser(
        prog="seedance-emulator",
        description="Run a local emulator of the Seedance 2.0 Open API (admin API under /__emulator__/).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="TCP port (0 = any free port; default 8787)")
    parser.add_argument("--time-scale", type=float, default=None,
                        help="multiplier of the default 1 s queued + 2 s processing (e.g. 60 = minutes-long jobs)")
    parser.add_argument("--queued-seconds", type=float, default=None, help="queued time at time scale 1")
    parser.add_argument("--processing-seconds", type=float, default=None, help="processing time at time scale 1")
    parser.add_argument("--api-key", action="append", dest="api_keys", default=None, metavar="KEY",
                        help="accepted bearer key (repeatable; default sd2_test_emulator_key)")
    parser.add_argument("--balance", type=int, default=None, help="starting credits per key")
    parser.add_argument("--max-concurrent-jobs", type=int, default=None, metavar="N",
                        help="account limit: jobs per API key running at once (default 0 = no limit)")
    parser.add_argument("--concurrency-mode", choices=("queue", "refuse"), default=None,
                        help="past --max-concurrent-jobs: 'queue' (the job stays queued until a slot frees; "
                             "default) or 'refuse' (429 with Retry-After, nothing charged)")
    parser.add_argument("--requests-per-second", type=float, default=None, metavar="R",
                        help="account limit: keyed requests per second per API key (429 with Retry-After past it)")
    parser.add_argument("--retry-after-seconds", type=float, default=None, metavar="S",
                        help="fixed Retry-After of the limits' 429s (default: computed, whole seconds)")
    parser.add_argument("--public-url", default=None, help="base URL put in output URLs (behind a proxy)")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC",
                        help="inject a fault: JSON or key=value,... e.g. 'kind=http,status=429,times=3,"
                             "retry_after=1,endpoint=status' (repeatable)")
    parser.add_argument("--next-job", action="append", default=[], metavar="SPEC",
                        help="behaviour of the next job(s): e.g. 'fail_with=content policy' or "
                             "'never_finishes=true,count=-1' (repeatable)")
    parser.add_argument("--machine-readable", action="store_true",
                        help="print SEEDANCE_EMULATOR_URL=<base url> first (used by spawn_emulator)")
    return parser


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for name in ("time_scale", "queued_seconds", "processing_seconds", "balance", "public_url",
                 "max_concurrent_jobs", "concurrency_mode", "requests_per_second", "retry_after_seconds"):
        value = getattr(args, name)
        if value is not None:
            settings[name] = value
    if args.api_keys:
        settings["api_keys"] = tuple(args.api_keys)
    return settings


async def _serve(args: argparse.Namespace) -> None:
    from airflow_provider_seedance.emulator.faults import FaultSpec, parse_fault_arg
    from airflow_provider_seedance.emulator.jobs import JobBehaviour
    from airflow_provider_seedance.emulator.runner import start_site
    from airflow_provider_seedance.emulator.server import SERVER_KEY
    from airflow_provider_seedance.emulator.state import EmulatorConfig
    from airflow_provider_seedance.emulator.testing import connection_json

    config = EmulatorConfig().updated(_settings(args))
    faults = [parse_fault_arg(text) for text in args.fault]
    behaviours = [parse_fault_arg(text) for text in args.next_job]
    for fault in faults:  # fail before binding the port
        FaultSpec.from_json(fault)
    for behaviour in behaviours:
        JobBehaviour.from_json(behaviour)
    runner, base_url = await start_site(args.host, args.port, config)
    server = runner.app[SERVER_KEY]
    # Faults given on the command line describe this run: an admin reset re-arms them.
    server.startup_faults, server.startup_behaviours = faults, behaviours
    server.reset()
    key = config.api_keys[0]
    if args.machine_readable:
        print(f"SEEDANCE_EMULATOR_URL={base_url}", flush=True)
    print(f"Seedance emulator listening on {base_url}  (started in {time.perf_counter() - _STARTED:.3f} s)")
    print(f"  API key:  {key}   (test key; accepted keys: {len(config.api_keys)})")
    print(f"  OpenAPI:  {base_url}/openapi.json    admin: {base_url}/__emulator__/stats")
    if config.max_concurrent_jobs or config.requests_per_second:
        print(f"  Limits:   {config.max_concurrent_jobs or 'no'} concurrent jobs per key "
              f"({config.concurrency_mode} past it), {config.requests_per_second or 'no'} requests/s per key")
    print("  Airflow connection:")
    print(f"    export AIRFLOW_CONN_SEEDANCE_DEFAULT='{connection_json(base_url, key)}'", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``seedance-emulator`` console script.

    :param argv: arguments (default: ``sys.argv[1:]``).
    """
    args = build_parser().parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except (ValueError, json.JSONDecodeError) as exc:
        print(f"seedance-emulator: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"seedance-emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
