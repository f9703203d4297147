"""Example: a daily content pipeline. Text-to-video from a templated prompt, deferred, saved, announced.

``example_seedance_content_pipeline`` runs every day (no catch-up). Its prompt is built from the
run's date and params; with no reference media (the default) the generation is **text-to-video**:
the request carries no ``mediaUrls`` at all. Trigger a run with
``{"reference_media": ["https://.../look.jpg"]}`` to make it image-to-video. The wait is deferred to
the triggerer (no worker slot is held while the video renders). The same task then saves the file
(``persist_to``, because the vendor's URL expires) under
``<seedance_video_dir>/content_pipeline/<date>/<run id>.mp4`` (one file per run: a scheduled and a
manual run of the same day must not overwrite each other's video), returns the stored file's URI (``.output``;
XCom ``output_url`` keeps the vendor's URL), and emits an event on the Asset
``seedance://videos/daily`` with ``{"video_uri": ..., "request_id": ...}`` in its extra.
``announce_video`` reads the stored file through ``generate.output``.

The date is the run's logical date, or, for a manual run without one (Airflow 3: the UI's Trigger
button, ``airflow dags trigger`` without ``--logical-date``), the day it was triggered
(``dag_run.run_after``). ``{{ ds }}`` and ``{{ logical_date }}`` are undefined in such a run.

``example_seedance_video_consumer`` is scheduled on that Asset: each new video triggers it, and it
finds the file through the event's extra.

Against the real service, set the ``seedance_default`` connection to your key (see
``example_seedance_image_to_video``); a 5 s 720p text-to-video job costs about 40 credits. The
generation runs in the pool ``seedance``: create it first (docs: "Run it for real, locally").
"""

from __future__ import annotations

import logging
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, ObjectStoragePath, Param, task

from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

log = logging.getLogger(__name__)

DAILY_VIDEO = Asset("seedance://videos/daily")
VIDEO_DIR = "{{ var.value.get('seedance_video_dir', '/tmp/seedance-videos') }}"

# The run's day: its logical date, or when it was triggered for a manual run that has none (Airflow 3
# leaves ``ds`` and ``logical_date`` undefined there, and a template using them fails with UndefinedError).
RUN_DAY = "(dag_run.logical_date or dag_run.run_after)"

# The day's theme comes from the run's date; params (or a manual run's config) refine it.
PROMPT = (
    "{% set day = " + RUN_DAY + " %}"
    "{{ params.theme }} on a {{ day.strftime('%A') }} in {{ day.strftime('%B') }}, {{ params.style }}"
)
DAY = "{{ " + RUN_DAY + " | ds }}"
# Unique per run, where the day is not (the scheduled run and a manual run of one day would overwrite each
# other's video, and the first run's XCom and Asset event would then point at the second's). A run id
# such as "manual__2026-06-01T09:30:00.123456+00:00_Ab12Cd34" holds ':' and '+': both are legal in local
# file names and S3 keys, but ':' is not allowed in Windows/SMB file names and splits scp/rsync paths, and
# AWS lists both among key characters needing special handling ('+' reads as a space wherever a key is
# form-decoded). Turned into '-', what is left is letters, digits and "_.~-": safe in any store and URI.
RUN_KEY = "{{ run_id | replace(':', '-') | replace('+', '-') }}"

with DAG(
    dag_id="example_seedance_content_pipeline",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=3,
    tags=["example", "seedance"],
    doc_md=__doc__,
    params={
        "theme": Param("A quiet harbour town waking up", type="string", minLength=1),
        "style": Param("golden-hour light, slow aerial push-in, cinematic", type="string"),
        "reference_media": Param([], type="array", maxItems=5, description="optional https media URLs"),
    },
):
    generate = SeedanceGenerateOperator(
        task_id="generate_video",
        prompt=PROMPT,
        # Renders to "[]" by default: no media, so text-to-video (the body gets no mediaUrls key).
        media_urls="{{ params.reference_media | tojson }}",
        model="seedance-2.0",
        aspect_ratio="9:16",
        duration=5,
        resolution="720p",
        metadata={"pipeline": "daily-content", "day": DAY},
        deferrable=True,
        # Generations in flight are capped by this pool (deferred ones count too). Create it first:
        #   airflow pools set seedance 2 "Seedance generations in flight" --include-deferred
        # Without it a scheduler never starts this task; `airflow dags test` runs it but warns.
        pool="seedance",
        # Saved in the worker once the trigger fires. The stored URI is the return value (.output) and
        # goes to XCom "video_uri" and to the Asset event's extra.
        persist_to=VIDEO_DIR + "/content_pipeline/" + DAY + "/" + RUN_KEY + ".mp4",
        outlets=[DAILY_VIDEO],
    )

    @task
    def announce_video(video_uri: str) -> str:
        """Stand-in for the next step (publish, transcode...): reads the stored file, not the vendor's URL.

        :param video_uri: where ``generate_video`` stored the video (its return value).
        """
        path = ObjectStoragePath(video_uri)
        log.info("Today's video: %s (%d bytes)", video_uri, path.size())
        return video_uri

    announce_video(generate.output)


with DAG(
    dag_id="example_seedance_video_consumer",
    schedule=[DAILY_VIDEO],
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "seedance"],
    doc_md=__doc__,
):

    @task
    def announce_new_videos(**context: Any) -> list[str]:
        """Find the file(s) behind the Asset events that triggered this run.

        :param context: the task context (``triggering_asset_events``).
        """
        found = []
        for event in context["triggering_asset_events"][DAILY_VIDEO]:
            uri = (event.extra or {}).get("video_uri")
            if not uri:
                continue
            path = ObjectStoragePath(uri)
            if not path.exists():
                raise FileNotFoundError(f"Asset event points at {uri}, which does not exist")
            log.info("New daily video %s (%d bytes, request %s)", uri, path.size(), event.extra.get("request_id"))
            found.append(uri)
        return found

    announce_new_videos()
