"""Lineage in the task's own process: the real operators, sensor and hook against the emulator.

These run on every supported Airflow (the 3.0 unit run included). The same methods called by the
OpenLineage listener under ``airflow dags test`` are in test_openlineage_events.py.
"""

from __future__ import annotations

import asyncio
import configparser
import fnmatch
import json
import os
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_seedance.hooks.seedance import SeedanceHook
from airflow_provider_seedance.lineage.naming import storage_asset_uri, storage_dataset, url_asset_uri, url_dataset
from airflow_provider_seedance.models import GenerationRequest
from airflow_provider_seedance.operators.persist import SeedancePersistVideoOperator
from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
from airflow_provider_seedance.sensors.seedance import SeedanceJobSensor

if TYPE_CHECKING:
    from airflow_provider_seedance.emulator.testing import EmulatorHandle

pytest.importorskip("airflow.providers.openlineage", reason="the [openlineage] extra is not installed")

from openlineage.client.serde import Serde

from airflow_provider_seedance.lineage.facets import (
    FACET_KEY,
    SCHEMA_FILE,
    SCHEMA_URL,
    SeedanceGenerationRunFacet,
)

REPO = Path(__file__).resolve().parents[2]
SIGNATURE = "MediaSig0123456789abcdefSECRET"
SIGNED_IMAGE = f"https://cdn.example.com:8443/refs/cat.jpg?X-Amz-Signature={SIGNATURE}&X-Amz-Expires=900"
#: Also user info and a fragment: refused by the API, so only named, never submitted.
CREDENTIALED_IMAGE = f"https://user:pw123@cdn.example.com:8443/refs/cat.jpg?X-Amz-Signature={SIGNATURE}#frag"
PLAIN_IMAGE = "https://example.com/kite.png"


def _op(**kwargs: Any) -> SeedanceGenerateOperator:
    defaults: dict[str, Any] = {
        "task_id": "generate",
        "prompt": "a cat surfing a wave",
        "media_urls": [SIGNED_IMAGE, PLAIN_IMAGE],
        "poll_interval": 0.05,
        "max_poll_interval": 0.2,
        "deferrable": False,
        "duration": 5,
        "resolution": "720p",
        "aspect_ratio": "16:9",
    }
    return SeedanceGenerateOperator(**{**defaults, **kwargs})


def _facet(lineage: Any) -> dict[str, Any]:
    """The seedanceGeneration facet as it is serialized into an event (None fields dropped)."""
    return json.loads(Serde.to_json(lineage.run_facets[FACET_KEY]))


def _names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def _fire(trigger: Any) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger fired no event")

    return asyncio.run(run())


# -- naming -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (SIGNED_IMAGE, ("https://cdn.example.com:8443", "/refs/cat.jpg")),
        (CREDENTIALED_IMAGE, ("https://cdn.example.com:8443", "/refs/cat.jpg")),
        ("https://CDN.Example.com/a%20b.jpg?sig=abc", ("https://cdn.example.com", "/a%20b.jpg")),
        ("http://127.0.0.1:8787/files/req_1.mp4", ("http://127.0.0.1:8787", "/files/req_1.mp4")),
        ("https://[::1]:9000/x.png?token=t", ("https://[::1]:9000", "/x.png")),
        ("https://host.example.com", ("https://host.example.com", "/")),
        ("ftp://host/x.png", None),
        ("not a url", None),
    ],
)
def test_url_dataset_is_scheme_host_and_path_only(url: str, expected: tuple[str, str] | None) -> None:
    assert url_dataset(url) == expected
    assert url_asset_uri(url) == (None if expected is None else expected[0] + expected[1])


def test_a_credential_in_a_path_parameter_is_masked_in_the_name() -> None:
    named = url_dataset(f"https://cdn.example.com/v;sig={SIGNATURE}/cat.jpg")
    assert named is not None
    assert SIGNATURE not in named[1]


@pytest.mark.parametrize(
    "destination",
    ["file:///data/videos/run_1/cat.mp4", "s3://aws_default@videos/2026/cat.mp4", "gs://bucket/a/b.mp4",
     "memory:///scratch/v.mp4"],
)
def test_stored_video_is_named_like_the_openlineage_providers_object_storage_path(destination: str) -> None:
    # The OpenLineage provider's own naming of an ObjectStoragePath: FileTransferOperator's lineage.
    from airflow.providers.common.io.operators.file_transfer import FileTransferOperator

    theirs = FileTransferOperator(task_id="t", src=destination, dst=destination).get_openlineage_facets_on_start()
    assert [storage_dataset(destination)] == _names(theirs.outputs)
    name = _names(theirs.outputs)[0][1]
    uri = storage_asset_uri(destination)
    assert uri is not None
    assert "aws_default" not in uri  # the connection id is not part of the asset
    assert uri.endswith(name)


# -- the facet and its schema -----------------------------------------------------------------------------


def test_facet_schema_is_shipped_and_matches_the_facet() -> None:
    schema_text = resources.files("airflow_provider_seedance.lineage").joinpath(SCHEMA_FILE).read_text()
    schema = json.loads(schema_text)
    assert schema["$id"] + "#/$defs/SeedanceGenerationRunFacet" == SCHEMA_URL
    own = schema["$defs"]["SeedanceGenerationRunFacet"]["allOf"][1]
    fields = {a.name for a in SeedanceGenerationRunFacet.__attrs_attrs__ if not a.name.startswith("_")}
    assert set(own["properties"]) == fields
    # It ships in the wheel too: setup.cfg's package data covers it.
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    patterns = cfg["options.package_data"].get("airflow_provider_seedance.lineage", "").split()
    assert any(fnmatch.fnmatch(SCHEMA_FILE, p) for p in patterns)


def test_a_full_facet_validates_against_its_schema() -> None:
    import jsonschema

    schema = json.loads(resources.files("airflow_provider_seedance.lineage").joinpath(SCHEMA_FILE).read_text())
    facet = SeedanceGenerationRunFacet(
        requestId="req_1", model="seedance-2.0", generationType="image-to-video", duration=5, resolution="720p",
        aspectRatio="16:9", mediaCount=2, creditsEstimated=64, creditsCharged=64, vendorStatus="succeeded",
        persisted=True, connectionId="seedance_default",
    )
    data = json.loads(Serde.to_json(facet))
    assert data["_schemaURL"] == SCHEMA_URL
    # The OpenLineage base (a remote $ref) is not fetched offline: our own part is checked.
    jsonschema.validate(data, schema["$defs"]["SeedanceGenerationRunFacet"]["allOf"][1])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**data, "generationType": "video-to-video"},
                            schema["$defs"]["SeedanceGenerationRunFacet"]["allOf"][1])


# -- SeedanceGenerateOperator -----------------------------------------------------------------------------


def test_start_reports_the_media_and_the_request_without_any_secret(emu: EmulatorHandle) -> None:
    lineage = _op(media_urls=[CREDENTIALED_IMAGE, PLAIN_IMAGE]).get_openlineage_facets_on_start()
    assert _names(lineage.inputs) == [
        ("https://cdn.example.com:8443", "/refs/cat.jpg"), ("https://example.com", "/kite.png")
    ]
    assert lineage.outputs == []
    assert _facet(lineage) | {"_producer": None} == {
        "_producer": None, "_schemaURL": SCHEMA_URL, "model": "seedance-2.0", "generationType": "image-to-video",
        "duration": 5, "resolution": "720p", "aspectRatio": "16:9", "mediaCount": 2, "persisted": False,
        "connectionId": "seedance_default",
    }
    assert "externalQuery" not in lineage.run_facets  # nothing submitted yet
    text = Serde.to_json(lineage.run_facets) + repr(lineage.inputs)
    assert SIGNATURE not in text
    assert "pw123" not in text


def test_worker_text_to_video_completes_with_request_id_credits_status_and_output_url(
    emu: EmulatorHandle, context: dict[str, Any]
) -> None:
    op = _op(media_urls=None, duration=5, resolution=None, aspect_ratio=None)
    url = op.execute(context)
    lineage = op.get_openlineage_facets_on_complete(context["ti"])
    rid = context["ti"].pushed["request_id"]
    facet = _facet(lineage)
    assert facet["requestId"] == rid
    assert facet["generationType"] == "text-to-video"
    assert facet["mediaCount"] == 0
    assert facet["creditsEstimated"] == facet["creditsCharged"] == 40
    assert facet["vendorStatus"] == "succeeded"
    assert lineage.inputs == []
    assert _names(lineage.outputs) == [url_dataset(url)]
    query = json.loads(Serde.to_json(lineage.run_facets["externalQuery"]))
    assert (query["externalQueryId"], query["source"]) == (rid, "seedance")


def test_after_a_deferral_a_fresh_operator_knows_the_job_from_the_event_and_the_record(
    emu: EmulatorHandle, context: dict[str, Any], openlineage_on: None
) -> None:
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.3)
    with pytest.raises(TaskDeferred) as deferred:
        _op(deferrable=True).execute(context)
    payload = _fire(deferred.value.trigger)
    # The task resumes in another worker process: a new operator object, nothing kept from the first.
    resumed = _op(deferrable=True)
    resumed.execute_complete(context, payload)
    facet = _facet(resumed.get_openlineage_facets_on_complete(context["ti"]))
    assert facet["requestId"] == payload["request_id"] == context["ti"].pushed["request_id"]
    assert facet["creditsCharged"] == 64
    assert facet["creditsEstimated"] == 64  # pushed before the deferral, read back in the resumed process
    assert facet["vendorStatus"] == "succeeded"


def test_without_openlineage_a_resumed_task_reads_no_xcom_for_lineage(
    emu: EmulatorHandle, context: dict[str, Any]
) -> None:
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.3)
    with pytest.raises(TaskDeferred) as deferred:
        _op(deferrable=True).execute(context)
    payload = _fire(deferred.value.trigger)
    pulls: list[str] = []
    ti = context["ti"]
    original = ti.xcom_pull
    ti.xcom_pull = lambda task_ids=None, key="return_value", **kw: pulls.append(key) or original(task_ids, key, **kw)
    resumed = _op(deferrable=True)
    resumed.execute_complete(context, payload)
    assert pulls == []  # the task does exactly what it did before lineage existed
    facet = _facet(resumed.get_openlineage_facets_on_complete(ti))
    assert facet["requestId"] == payload["request_id"]
    assert "creditsEstimated" not in facet  # not read back when nothing emits


def test_a_retry_that_resumes_the_job_reports_the_same_request_id(
    emu: EmulatorHandle, context: dict[str, Any], stub_ti: Any
) -> None:
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0.3)
    emu.admin.add_fault(kind="http", endpoint="status", status=404, times=1, body="not found (replica lag)")
    first = _op()
    with pytest.raises(Exception, match="not found"):
        first.execute(context)  # try 1: submitted, then its first status check failed
    failed = _facet(first.get_openlineage_facets_on_failure(context["ti"]))
    rid = context["ti"].pushed["request_id"]
    assert failed["requestId"] == rid
    assert failed["vendorStatus"] in ("queued", "processing")

    context["ti"] = stub_ti(try_number=2)
    second = _op()  # try 2, another process
    second.execute(context)
    done = _facet(second.get_openlineage_facets_on_complete(context["ti"]))
    assert done["requestId"] == rid
    assert done["creditsCharged"] == 64
    assert done["vendorStatus"] == "succeeded"
    assert emu.admin.stats()["submits"] == 1


def test_a_failed_job_reports_the_vendors_status(emu: EmulatorHandle, context: dict[str, Any]) -> None:
    emu.admin.set_next_jobs(fail_with="content policy violation")
    op = _op()
    with pytest.raises(Exception, match="content policy violation"):
        op.execute(context)
    facet = _facet(op.get_openlineage_facets_on_failure(context["ti"]))
    assert facet["requestId"] == context["ti"].pushed["request_id"]
    assert facet["vendorStatus"] == "failed"


def test_persist_to_reports_the_stored_video_where_it_really_is(
    emu: EmulatorHandle, context: dict[str, Any], tmp_path: Path
) -> None:
    target = tmp_path / "videos" / "cat.mp4"
    op = _op(persist_to=str(target))
    start = op.get_openlineage_facets_on_start()
    op.execute(context)
    done = op.get_openlineage_facets_on_complete(context["ti"])
    assert _names(start.outputs) == _names(done.outputs) == [("file", str(target).lstrip("/"))]
    assert target.stat().st_size > 0
    assert _facet(done)["persisted"] is True
    assert SIGNATURE not in Serde.to_json(done.run_facets) + repr(done.outputs) + repr(done.inputs)


# -- SeedanceJobSensor and SeedancePersistVideoOperator -------------------------------------------------


def test_sensor_reports_the_job_it_waited_for_and_its_output(
    emu: EmulatorHandle, context: dict[str, Any], stub_ti: Any
) -> None:
    with SeedanceHook() as hook:
        rid = hook.submit(GenerationRequest(prompt="[sensor] a train", duration=5)).request_id
    context["ti"] = stub_ti(task_id="wait")
    sensor = SeedanceJobSensor(task_id="wait", request_id=rid, poke_interval=0.05, timeout=30, mode="poke")
    start = sensor.get_openlineage_facets_on_start()
    assert _facet(start)["requestId"] == rid
    url = sensor.execute(context)
    done = sensor.get_openlineage_facets_on_complete(context["ti"])
    facet = _facet(done)
    assert (facet["requestId"], facet["vendorStatus"], facet["model"]) == (rid, "succeeded", "seedance-2.0")
    assert _names(done.outputs) == [url_dataset(url)]
    assert json.loads(Serde.to_json(done.run_facets["externalQuery"]))["externalQueryId"] == rid


def test_persist_operator_reads_the_url_without_its_token_and_writes_the_destination(
    emu: EmulatorHandle, context: dict[str, Any], tmp_path: Path, stub_ti: Any
) -> None:
    with SeedanceHook() as hook:
        rid = hook.submit(GenerationRequest(prompt="[ok] a kite", duration=5)).request_id
    source = f"{emu.base_url}/files/{rid}.mp4?token={SIGNATURE}"
    emu.admin.set_next_jobs()  # nothing special: just let the job finish
    with SeedanceHook() as hook:
        while not hook.get_job(rid).status.is_terminal:
            pass
    op = SeedancePersistVideoOperator(
        task_id="save", source_url=source, destination=str(tmp_path / "saved.mp4"), request_id=rid
    )
    context["ti"] = stub_ti(task_id="save")
    op.execute(context)
    done = op.get_openlineage_facets_on_complete(context["ti"])
    assert _names(done.inputs) == [url_dataset(f"{emu.base_url}/files/{rid}.mp4")]
    assert _names(done.outputs) == [("file", str(tmp_path / "saved.mp4").lstrip("/"))]
    assert _facet(done)["requestId"] == rid
    assert SIGNATURE not in repr(done.inputs) + Serde.to_json(done.run_facets)


# -- hook lineage, import cost, and Airflow without the OpenLineage provider ---------------------------


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env=full_env, timeout=240, check=False)


def test_hook_and_persist_video_report_to_airflows_hook_lineage(emu: EmulatorHandle, tmp_path: Path) -> None:
    # A fresh interpreter with OpenLineage configured, so Airflow's real collector (not the no-op) is used,
    # and the OpenLineage provider's own hook-lineage reader translates what was collected.
    out = _python(
        f"""
        import json, time
        from airflow_provider_seedance.hooks.seedance import SeedanceHook
        from airflow_provider_seedance.models import GenerationRequest
        from airflow_provider_seedance.persist import persist_video
        from airflow.providers.openlineage.extractors.manager import ExtractorManager
        with SeedanceHook() as hook:
            job = hook.submit(GenerationRequest(prompt="[ok] hook lineage", media_urls=[{SIGNED_IMAGE!r}]))
            while not (job := hook.get_job(job.request_id)).status.is_terminal:
                time.sleep(0.05)
        persist_video(job.output_url + "?token={SIGNATURE}", {str(tmp_path / "hook.mp4")!r})
        lineage = ExtractorManager().get_hook_lineage()
        print(json.dumps({{"inputs": [[d.namespace, d.name] for d in lineage.inputs],
                           "outputs": [[d.namespace, d.name] for d in lineage.outputs]}}))
        """,
        {"AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "console"}),
         "AIRFLOW_CONN_SEEDANCE_DEFAULT": emu.connection_json},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    output_host = url_dataset(emu.base_url)
    assert output_host is not None
    assert result["inputs"][0] == ["https://cdn.example.com:8443", "/refs/cat.jpg"]
    assert [output_host[0], result["inputs"][1][1]] == result["inputs"][1]
    assert result["inputs"][1][1].startswith("/files/req_")
    # The file converter of Airflow's common.io provider names the written file.
    assert result["outputs"] == [["file", str(tmp_path / "hook.mp4")]]
    assert SIGNATURE not in out.stdout + out.stderr


def test_dag_parse_imports_nothing_of_lineage() -> None:
    out = _python(
        """
        import sys, json
        import airflow.sdk
        before = set(sys.modules)
        import airflow_provider_seedance.operators.seedance, airflow_provider_seedance.sensors.seedance
        import airflow_provider_seedance.operators.persist
        print(json.dumps(sorted(m for m in set(sys.modules) - before if "lineage" in m)))
        """
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # operators._lineage is the request-metadata lineage that was there before; nothing of OpenLineage.
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["airflow_provider_seedance.operators._lineage"]


def test_without_the_openlineage_provider_the_operator_imports_and_runs(emu: EmulatorHandle) -> None:
    out = _python(
        """
        import sys, json
        # As if the [openlineage] extra were not installed: its modules cannot be imported and its
        # distributions (the provider's entry point with them) are not listed.
        HIDDEN = ("openlineage", "airflow.providers.openlineage")

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name in HIDDEN or name.startswith(tuple(h + "." for h in HIDDEN)):
                    raise ModuleNotFoundError(f"No module named {name!r}")

        sys.meta_path.insert(0, Block())
        import importlib.metadata as stdlib_metadata
        modules = [stdlib_metadata]
        try:
            import importlib_metadata
            modules.append(importlib_metadata)
        except ImportError:
            pass
        for module in modules:
            def visible(original=module.distributions, **kwargs):
                return [d for d in original(**kwargs) if "openlineage" not in (d.metadata["name"] or "").lower()]
            module.distributions = visible
        from airflow_provider_seedance.operators.seedance import SeedanceGenerateOperator
        from airflow_provider_seedance.lineage.facts import openlineage_enabled

        class TI:
            dag_id, run_id, task_id, map_index, try_number = "d", "r", "generate", -1, 1
            def xcom_push(self, key, value):
                pass

        op = SeedanceGenerateOperator(task_id="generate", prompt="[ok] no lineage", poll_interval=0.05,
                                      max_poll_interval=0.2, resumable=False)
        url = op.execute({"ti": TI()})
        try:
            op.get_openlineage_facets_on_start()
            facets = "built"
        except ImportError:
            facets = "ImportError"
        print(json.dumps({"url": url, "enabled": openlineage_enabled(), "facets": facets}))
        """,
        {"AIRFLOW_CONN_SEEDANCE_DEFAULT": emu.connection_json},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["url"].startswith(emu.base_url + "/files/req_")
    assert result["enabled"] is False
    assert result["facets"] == "ImportError"  # only the OpenLineage listener calls it, and it is absent
