"""Scale: the emulator holds 10,000 concurrent jobs and answers every one of them."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from emu_client import GENERATIONS, T2V

from airflow_provider_seedance.emulator.testing import spawn_emulator

JOBS = 10_000


async def _submit_and_poll_all(base_url: str, key: str) -> tuple[list[str], list[str]]:
    connector = aiohttp.TCPConnector(limit=32)
    headers = {"Authorization": f"Bearer {key}"}
    # A semaphore rather than 10,000 waiters queued inside the connector (much cheaper for the client).
    gate = asyncio.Semaphore(32)
    async with aiohttp.ClientSession(base_url, connector=connector, headers=headers) as session:
        async def submit(i: int) -> str:
            async with gate, session.post(GENERATIONS, json=dict(T2V, prompt=f"job {i}")) as resp:
                assert resp.status == 200
                return (await resp.json())["requestId"]

        async def status(rid: str) -> str:
            async with gate, session.get(f"{GENERATIONS}/{rid}") as resp:
                assert resp.status == 200
                return (await resp.json())["status"]

        ids = await asyncio.gather(*(submit(i) for i in range(JOBS)))
        statuses = await asyncio.gather(*(status(rid) for rid in ids))
    return list(ids), list(statuses)


@pytest.mark.slow
def test_ten_thousand_concurrent_jobs() -> None:
    # A separate process, so client and server each get a core; jobs last minutes (time scale 100).
    with spawn_emulator(time_scale=100, balance=10**9) as emu:
        ids, statuses = asyncio.run(_submit_and_poll_all(emu.base_url, emu.api_key))
        stats = emu.admin.stats()
    assert len(set(ids)) == JOBS
    assert set(statuses) == {"queued"}
    assert stats["jobs_total"] == JOBS
    assert stats["jobs"] == {"queued": JOBS}
    assert (stats["submits"], stats["gets"]) == (JOBS, JOBS)
    assert stats["connections"] <= 32  # keep-alive connections were reused
