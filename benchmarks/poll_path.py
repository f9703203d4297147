"""The size of the two roads a reader follows: one steady-state status poll (trigger -> ``JobResult``) and one
submit (``SeedanceGenerateOperator.execute`` -> POST -> defer).

Against a spawned emulator, traced with ``sys.settrace`` (the project's own files only, the emulator left out):

- poll: a ``SeedanceJobTrigger`` waits for a job that stays ``processing``; after two warm-up polls
  (connection lookup, session creation) the next polls are traced.
- submit: after one warm-up submit (imports), a fresh operator's ``execute`` is traced until it defers.

Printed: the project files each road runs through, the distinct lines executed in each, and the total length
of the functions entered. Goals: a poll at most 200 lines in at most 4 modules; a submit at most 600 lines in
at most 8 modules. Standalone: ``python benchmarks/poll_path.py``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = ["measure_poll_path", "measure_submit_path"]

# The package imported (PYTHONPATH may point at another checkout, e.g. a worktree of an older commit).
PACKAGE = Path(importlib.util.find_spec("airflow_provider_seedance").origin or "").resolve().parent  # type: ignore[union-attr]
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

    lines, functions, tracer = _tracer()
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
    return _summary(lines, functions)


def _tracer() -> tuple[dict[str, set[int]], dict[tuple[str, str], int], Any]:
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

    return lines, functions, tracer


def _summary(lines: dict[str, set[int]], functions: dict[tuple[str, str], int]) -> dict[str, Any]:
    files = {f: len(v) for f, v in sorted(lines.items())}
    return {
        "files": files,
        "executed_lines": sum(files.values()),
        "transport_executed_lines": sum(n for f, n in files.items() if f in TRANSPORT),
        "transport_function_lines": sum(n for (f, _), n in functions.items() if f in TRANSPORT),
        "functions": {f"{f}:{q}": n for (f, q), n in sorted(functions.items())},
        "function_lines": sum(functions.values()),
    }


class _TaskInstance:
    """The task-instance attributes the operator reads, XComs kept in a list."""

    def __init__(self, task_id: str) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index, self.try_number = "bench", "manual__1", task_id, -1, 1
        self.pushed: list[tuple[str, Any]] = []

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed.append((key, value))


class _StateStore(dict):  # type: ignore[type-arg]
    """The task state store's get/set surface."""

    def set(self, key: str, value: Any, **_: Any) -> None:
        self[key] = value


def measure_submit_path() -> dict[str, Any]:
    """Trace one deferrable ``SeedanceGenerateOperator.execute`` from its start to the defer (after a warm-up one)."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    from airflow_provider_seedance.emulator.testing import spawn_emulator
    from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

    def submit(task_id: str, trace: Any = None) -> None:
        operator = SeedanceGenerateOperator(task_id=task_id, prompt="submit path probe", deferrable=True,
                                            max_credits=1000)
        context = {"ti": _TaskInstance(task_id), "task_state_store": _StateStore()}
        if trace is not None:
            sys.settrace(trace)
        try:
            operator.execute(context)  # type: ignore[arg-type]
        except TaskDeferred:
            pass
        finally:
            sys.settrace(None)

    lines, functions, tracer = _tracer()
    with spawn_emulator(time_scale=1.0) as emu:
        os.environ["AIRFLOW_CONN_SEEDANCE_DEFAULT"] = emu.connection_json
        emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=3600)
        submit("warm_up")
        submit("traced", tracer)
    return _summary(lines, functions)


async def _until_gets(emu: Any, request_id: str, count: int) -> None:
    def gets() -> int:
        return len([r for r in emu.admin.requests(endpoint="status") if r.get("requestId") == request_id])

    for _ in range(1200):  # bounded: a minute at most
        if gets() >= count:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"the trigger made fewer than {count} status requests in a minute")


def _print(title: str, result: dict[str, Any], goal: tuple[int, int], *, transport: bool) -> None:
    print(title)
    for name, count in result["files"].items():
        print(f"  {name:55s} {count:4d} lines executed")
    print(f"  {len(result['files'])} files, {result['executed_lines']} lines executed, "
          f"{result['function_lines']} lines in the {len(result['functions'])} functions entered "
          f"(goal: at most {goal[0]} lines in at most {goal[1]} modules)")
    if transport:
        print(f"  of which trigger -> hook -> response ({len(TRANSPORT)} files): "
              f"{result['transport_executed_lines']} lines executed, {result['transport_function_lines']} lines "
              "in the functions entered")
    for name, count in result["functions"].items():
        print(f"    {name:80s} {count:4d}")


def main() -> int:
    """Print both roads' files and sizes."""
    _print("project code one steady-state status poll runs (trigger -> hook -> aiohttp -> JobResult):",
           measure_poll_path(), (200, 4), transport=True)
    _print("project code one submit runs (operator execute -> validate -> estimate -> POST -> record -> defer):",
           measure_submit_path(), (600, 8), transport=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
