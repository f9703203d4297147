"""Example: one image-to-video generation, its output URL used downstream, the video saved.

``generate_video`` submits the job and waits for it (in the worker; pass ``deferrable=True`` or set
``[operators] default_deferrable`` to wait in the triggerer instead) and returns the output URL.
``save_video`` streams that file into storage before the vendor's URL expires, and ``publish``
consumes both: the vendor URL and the stored URI.

**Run it locally** (no key, offline): ``make demo`` starts the bundled emulator, sets the connection
and runs this DAG with ``airflow dags test``.

**Run it against the real service**: create the connection with your key and run it the same way::

    export AIRFLOW_CONN_SEEDANCE_DEFAULT='{"conn_type": "seedance", "host": "https://www.seedance2.ink",
                                          "password": "sd2_live_..."}'
    airflow dags test example_seedance_image_to_video -c '{"image_url": "https://your.cdn/photo.jpg"}'

(or ``airflow connections add seedance_default --conn-type seedance --conn-host https://www.seedance2.ink
--conn-password sd2_live_...``). A real run costs credits (about 64 for 5 s at 720p). ``image_url``
must be a public https URL the vendor can fetch.

**Where videos go**: the Airflow Variable ``seedance_video_dir`` (a local path or any object storage
URI such as ``s3://aws_default@my-bucket/videos``; the environment variable
``AIRFLOW_VAR_SEEDANCE_VIDEO_DIR`` sets it too), default ``/tmp/seedance-videos``. The file is
``<dir>/example_seedance_image_to_video/<request id>.mp4``.
"""

from __future__ import annotations

import logging

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_seedance.operators.persist import SeedancePersistVideoOperator
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator

log = logging.getLogger(__name__)

VIDEO_DIR = "{{ var.value.get('seedance_video_dir', '/tmp/seedance-videos') }}"
REQUEST_ID = "{{ ti.xcom_pull(task_ids='generate_video', key='request_id') }}"

with DAG(
    dag_id="example_seedance_image_to_video",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["example", "seedance"],
    doc_md=__doc__,
    params={
        "prompt": Param(
            "A red vintage bicycle leaning on a sunlit brick wall, slow dolly-in, cinematic light",
            type="string",
            minLength=1,
        ),
        "image_url": Param("https://example.com/photo.jpg", type="string", description="public https image URL"),
    },
):
    generate = SeedanceGenerateOperator(
        task_id="generate_video",
        prompt="{{ params.prompt }}",
        media_urls=["{{ params.image_url }}"],
        model="seedance-2.0",
        aspect_ratio="16:9",
        duration=5,
        resolution="720p",
    )

    save = SeedancePersistVideoOperator(
        task_id="save_video",
        source_url=generate.output,
        destination=VIDEO_DIR + "/{{ dag.dag_id }}/" + REQUEST_ID + ".mp4",
        request_id=REQUEST_ID,
    )

    @task
    def publish(output_url: str, video_uri: str) -> dict[str, str]:
        """Stand-in for the real next step (post to a CMS, notify a channel...).

        :param output_url: the vendor's (expiring) URL, from ``generate_video``.
        :param video_uri: where ``save_video`` stored the file.
        """
        # Signed URLs carry tokens in the query string: log only the part before it.
        log.info("New video: %s (stored at %s)", output_url.split("?", 1)[0], video_uri)
        return {"output_url": output_url, "video_uri": video_uri}

    publish(generate.output, save.output)
