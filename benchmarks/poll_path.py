"""The poll path's size: the project's own code one steady-state status poll runs, from the trigger to a
``JobResult``.

Against a spawned emulator, a ``SeedanceJobTrigger`` waits for a job that stays ``processing``; after two
warm-up polls (connection lookup, session creation), the next polls are traced with ``sys.settrace``.
Printed: the project files the poll runs through, the lines executed in each, and the total length of the
functions entered (what a reader follows). Standalone: ``python benchmarks/poll_path.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["measure_poll_path"]

PACKAGE = Path(__file__).resolve().parent.parent / "airflow_provider_seedance"
#: The path proper: the trigger's loop, the hook's request and the response's reading. The rest it passes
#: through is shared by every call (the request/result model, the retry policy, the schedule, the errors).
TRANSPORT = ("airflow_provider_seedance/triggers/seedance.py", "airflow_provider_seedance/hooks/seedance.py",
             "airflow_provider_seedance/hooks/_http.py")


def measure_poll_path(polls: int = 3) -> dict[str, Any]:
    """Trace ``polls`` steady-state polls of a waiting trigger; return files, executed lines, function lines.

    :param polls: polls traced after the warm-up.
    """
    from airflow_provider_seedance.emulator.testing import spawn_emulator
    from airflow_provider_seedance.hooks.seedance import SeedanceHook
    from airflow_provider_seedance.models import GenerationRequest
    from airflow_provider_seedance.triggers.seedance import SeedanceJobTrigger

    lines: dict[str, set[int]] = {}
    functions: dict[tuple[str, str], int] = {}

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        filename = frame.f_code.co_filename
        if not filename.startswith(str(PACKAGE)) or "/emulator/" in filename:  # the probe's own admin calls
            return None
        rel = os.path.relpath(filename, PACKAGE.parent)
        if event == "call":
            key = (rel, frame.f_code.co_qualname)
            if key not in functions:
                try:
                    functions[key] = len(inspect.getsourcelines(frame.f_code)[0])
                except OSError:
                    functions[key] = 0
        lines.setdefault(rel, set()).add(frame.f_lineno)
        return tracer

    with spawn_emulator(time_scale=1.0) as emu:
        os.environ["AIRFLOW_CONN_SEEDANCE_DEFAULT"] = emu.connection_json
        emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=3600)
        with SeedanceHook() as hook:
            request_id = hook.submit(GenerationRequest(prompt="poll path probe")).request_id
        trigger = SeedanceJobTrigger(request_id=request_id, poll_interval=0.2, max_poll_interval=0.2,
                                     owns_job=False)

        async def main() -> None:
            gen = trigger.run()
            task = asyncio.ensure_future(gen.__anext__())
            await _until_gets(emu, request_id, 2)
            await asyncio.sleep(0.1)  # between two polls: the traced ones start from a sleeping wait
            sys.settrace(tracer)
            await _until_gets(emu, request_id, 2 + polls)
            await asyncio.sleep(0.05)
            sys.settrace(None)
            task.cancel()

        asyncio.run(main())
    files = {f: len(v) for f, v in sorted(lines.items())}
    return {
        "files": files,
        "executed_lines": sum(files.values()),
        "transport_executed_lines": sum(n for f, n in files.items() if f in TRANSPORT),
        "transport_function_lines": sum(n for (f, _), n in functions.items() if f in TRANSPORT),
        "functions": {f"{f}:{q}": n for (f, q), n in sorted(functions.items())},
        "function_lines": sum(functions.values()),
    }


async def _until_gets(emu: Any, request_id: str, count: int) -> None:
    def gets() -> int:
        return len([r for r in emu.admin.requests(endpoint="status") if r.get("requestId") == request_id])

    for _ in range(1200):  # bounded: a minute at most
        if gets() >= count:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the trigger made fewer than {count} status requests in a minute")


def main() -> int:
    """Print the poll path's files and sizes."""
    result = measure_poll_path()
    print("project code one steady-state status poll runs (trigger -> hook -> aiohttp -> JobResult):")
    for name, count in result["files"].items():
        print(f"  {name:55s} {count:4d} lines executed")
    print(f"  {len(result['files'])} files, {result['executed_lines']} lines executed, "
          f"{result['function_lines']} lines in the {len(result['functions'])} functions entered")
    print(f"  of which trigger -> hook -> response ({len(TRANSPORT)} files): {result['transport_executed_lines']} "
          f"lines executed, {result['transport_function_lines']} lines in the functions entered")
    for name, count in result["functions"].items():
        print(f"    {name:80s} {count:4d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
