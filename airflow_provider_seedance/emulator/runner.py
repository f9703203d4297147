"""Start and stop the emulator's aiohttp server: in a background thread (tests) or in the foreground (CLI)."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from airflow_provider_seedance.emulator.server import build_app
from airflow_provider_seedance.emulator.state import EmulatorConfig

__all__ = ["RunningEmulator", "start_in_thread", "start_site"]


async def start_site(host: str, port: int, config: EmulatorConfig) -> tuple[web.AppRunner, str]:
    """Build the app, bind it and return the runner and base URL.

    :param host: interface to bind.
    :param port: TCP port (0: a free one).
    :param config: settings.
    """
    # Quiet aiohttp's per-connection noise from the injected drop/close faults.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    runner = web.AppRunner(build_app(config), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    bound = runner.addresses[0]
    url_host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    return runner, f"http://{url_host}:{bound[1]}"


@dataclass
class RunningEmulator:
    """An emulator served by a background thread.

    :param base_url: where it listens.
    """

    base_url: str
    loop: asyncio.AbstractEventLoop = field(repr=False)
    runner: web.AppRunner = field(repr=False)
    thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        """Shut the server down and join the thread."""
        if not self.loop.is_running():
            return
        future = asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop)
        try:
            future.result(timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


def start_in_thread(host: str, port: int, settings: dict[str, Any]) -> RunningEmulator:
    """Start an emulator on its own event loop in a daemon thread; return once it listens.

    :param host: interface to bind.
    :param port: TCP port (0: a free one).
    :param settings: :class:`EmulatorConfig` fields.
    """
    config = EmulatorConfig().updated(settings)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    outcome: dict[str, Any] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            outcome["started"] = loop.run_until_complete(start_site(host, port, config))
        except BaseException as exc:  # reported to the caller below
            outcome["error"] = exc
            started.set()
            return
        started.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="seedance-emulator", daemon=True)
    thread.start()
    started.wait()
    if "error" in outcome:
        raise outcome["error"]
    runner, base_url = outcome["started"]
    return RunningEmulator(base_url=base_url, loop=loop, runner=runner, thread=thread)
