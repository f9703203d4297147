"""DAGs run by tests/lineage with ``airflow dags test`` and the OpenLineage provider's file transport.

``SEEDANCE_LINEAGE_OUT`` (set by the test) is the directory the videos are saved to. The media URL
and the persist operator's source URL are "signed": their query strings hold the secrets the test
looks for in every emitted event.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import BaseHook
from airflow.sdk import DAG, task

from airflow_provider_seedance.operators.persist import SeedancePersistVideoOperator
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.sensors.seedance import SeedanceJobSensor

START = datetime(2026, 1, 1)
FAST: dict[str, Any] = {"poll_interval": 0.2, "max_poll_interval": 1.0}
OUT = os.environ.get("SEEDANCE_LINEAGE_OUT", "/tmp/seedance-lineage-out")
#: Secrets of the "signed" URLs; tests assert they appear in no event.
MEDIA_SIGNATURE = "MediaSig0123456789abcdefSECRET"
MEDIA_CREDENTIAL = "AKIAMEDIACREDSECRET42"
SOURCE_TOKEN = "SourceTok0123456789abcdefSECRET"
SIGNED_IMAGE = (
    "https://cdn.example.com/refs/cat.jpg"
    f"?X-Amz-Credential={MEDIA_CREDENTIAL}&X-Amz-Expires=900&X-Amz-Signature={MEDIA_SIGNATURE}"
)
SECOND_IMAGE = "https://images.example.org:8443/boards/kite.png"


def _arm_status_404() -> None:
    """Make the next status check fail with a permanent 404, so try 1 fails right after its submit."""
    from airflow_provider_seedance.emulator.testing import EmulatorAdmin

    admin = EmulatorAdmin(BaseHook.get_connection("seedance_default").host)
    admin.add_fault(kind="http", endpoint="status", status=404, times=1, body="not found (replica lag)")


with DAG("seedance_lineage_i2v", schedule=None, start_date=START, catchup=False):
    SeedanceGenerateOperator(
        task_id="generate",
        prompt="[ok] a cat surfing a wave",
        media_urls=[SIGNED_IMAGE, SECOND_IMAGE],
        duration=5,
        resolution="720p",
        aspect_ratio="16:9",
        deferrable=True,
        persist_to=f"file://{OUT}/{{{{ run_id | replace(':', '_') | replace('+', '_') }}}}/cat.mp4",
        **FAST,
    )
    submit = SeedanceGenerateOperator(
        task_id="submit", prompt="[ok] a train in the rain", wait_for_completion=False, **FAST
    )
    wait = SeedanceJobSensor(
        task_id="wait",
        request_id="{{ ti.xcom_pull(task_ids='submit') }}",
        deferrable=True,
        poke_interval=0.2,
        max_poll_interval=1.0,
    )
    save = SeedancePersistVideoOperator(
        task_id="save",
        source_url="{{ ti.xcom_pull(task_ids='wait', key='output_url') }}?token=" + SOURCE_TOKEN,
        destination=f"{OUT}/saved/{{{{ ti.xcom_pull(task_ids='submit') }}}}.mp4",
        request_id="{{ ti.xcom_pull(task_ids='submit') }}",
    )
    submit >> wait >> save


with DAG("seedance_lineage_t2v", schedule=None, start_date=START, catchup=False):
    SeedanceGenerateOperator(
        task_id="generate",
        prompt="[ok] a lighthouse at dusk",
        duration=5,
        deferrable=False,
        **FAST,
    )


with DAG("seedance_lineage_retry", schedule=None, start_date=START, catchup=False):
    arm = task(task_id="arm_404")(_arm_status_404)()
    arm >> SeedanceGenerateOperator(
        task_id="generate",
        prompt="[retry-slow] try 1 loses its first status check",
        media_urls=[SIGNED_IMAGE],
        deferrable=True,
        retries=1,
        retry_delay=timedelta(seconds=1),
        **FAST,
    )


def _generate_with_the_hook() -> str:
    """A plain @task using the hook and persist_video directly: no operator lineage methods involved."""
    import time

    from airflow_provider_seedance.hooks.seedance import SeedanceHook
    from airflow_provider_seedance.models import GenerationRequest
    from airflow_provider_seedance.persist import persist_video

    with SeedanceHook() as hook:
        job = hook.submit(GenerationRequest(prompt="[ok] through the hook", media_urls=[SIGNED_IMAGE], duration=5))
        deadline = time.monotonic() + 60
        while not (job := hook.get_job(job.request_id)).status.is_terminal and time.monotonic() < deadline:
            time.sleep(0.2)
    return persist_video(f"{job.output_url}?token={SOURCE_TOKEN}", f"{OUT}/hook/{job.request_id}.mp4")


with DAG("seedance_lineage_hook", schedule=None, start_date=START, catchup=False):
    task(task_id="generate_with_hook")(_generate_with_the_hook)()
