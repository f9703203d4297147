"""A fresh triggerer's first Seedance trigger must not import the HTTP stack on the event loop's thread.

Importing the hook module (aiohttp, requests, the http provider) takes ~0.2-0.3 s the first time: done on
the loop thread it blocks every trigger of the triggerer and Airflow logs "Triggerer's async thread was
blocked". Checked structurally, in a fresh interpreter: Python's ``import`` audit event is raised in the
importing thread, so it tells which thread imported what (no timing involved).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from airflow_provider_seedance.emulator.testing import EmulatorHandle
from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.models import GenerationRequest

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys, threading
    imported = {}

    def audit(event, args):
        if event == "import" and args[0] not in imported:
            imported[args[0]] = threading.get_ident()

    import airflow.triggers.base  # what a triggerer has loaded before it creates a trigger
    sys.addaudithook(audit)
    from airflow_provider_seedance.triggers.seedance import SeedanceJobTrigger

    heavy_after_class_import = sorted(m for m in ("aiohttp", "requests", "airflow.providers.http.hooks.http")
                                      if m in sys.modules)

    async def wait(trigger):
        return [e async for e in trigger.run()][0].payload["event"]

    async def main():
        loop_thread = threading.get_ident()
        # Twenty triggers start in the same tick of a fresh triggerer, all before the hook module is loaded.
        triggers = [SeedanceJobTrigger(request_id=sys.argv[1], poll_interval=0.05, max_poll_interval=0.05)
                    for _ in range(20)]
        events = await asyncio.gather(*(wait(t) for t in triggers), return_exceptions=True)
        return loop_thread, sorted({repr(e) if isinstance(e, BaseException) else e for e in events})

    loop_thread, event = asyncio.run(main())
    heavy = ("aiohttp", "requests", "airflow.providers.http.hooks.http")
    print(json.dumps({"heavy_after_class_import": heavy_after_class_import,
                      "on_loop": sorted(m for m in heavy if imported.get(m) == loop_thread),
                      "off_loop": sorted(m for m in heavy if m in imported and imported[m] != loop_thread),
                      "event": event}))
    """
)


def test_first_trigger_imports_the_http_stack_off_the_event_loop(emu: EmulatorHandle) -> None:
    with SeedanceHook() as hook:
        request_id = hook.submit(GenerationRequest(prompt="first trigger")).request_id
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, request_id], capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "AIRFLOW_CONN_SEEDANCE_DEFAULT": emu.connection_json},
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["event"] == ["completed"]  # every one of the twenty: none saw a half-imported module
    assert report["heavy_after_class_import"] == []  # the triggerer imports the trigger class on its loop
    assert report["on_loop"] == []
    assert report["off_loop"] == ["aiohttp", "airflow.providers.http.hooks.http", "requests"]
