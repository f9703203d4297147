"""One real engine run with a recognisable API key, then a scan of everything it left behind.

The run (tests/faults/engine_run.py) uses a real scheduler, LocalExecutor task processes, a triggerer,
a dag-processor and an api-server; the only key the emulator accepts is ``sd2_live_LEAKCANARY...``, and
the connection carries it. The vendor is made to echo the key back (a failed job's error, a catalogue
error) and URLs with credentials are used (media, webhook, and every output URL). Then the key is
searched in: every task log and trigger log file, the scheduler/triggerer/dag-processor/api-server
logs, every row of every table of the metadata DB (XCom, rendered template fields, task instances,
DAG runs...), and the trigger rows captured while the tasks were deferred, decoded the way Airflow
decodes them (its ``Trigger`` model with the run's Fernet key; Airflow 3.3 stores Task SDK deferrals'
kwargs unencrypted, so the raw column is scanned as well). URL credentials are searched in every log and
rendered field; they may only live where they are data or the DAG's own code.
"""

from __future__ import annotations

import pytest
from engine_run import API_KEY_CANARY, URL_CANARIES, EngineObservation, observe_engine

pytestmark = pytest.mark.e2e
SECRETS = "seedance_engine_secrets"


@pytest.fixture(scope="module")
def obs() -> EngineObservation:
    return observe_engine()


def _places(obs: EngineObservation, needle: str) -> list[str]:
    found = [p for p, text in {**obs.task_logs, **obs.component_logs}.items() if needle in text]
    found += [f"db table {t}" for t, text in obs.db_tables.items() if needle in text]
    found += [f"rendered fields {k}" for k, text in obs.rendered_fields.items() if needle in text]
    found += [f"trigger row {r['id']}" for r in obs.trigger_rows if needle in repr(r)]
    found += [f"xcom {k}" for k, v in obs.xcoms.items() if needle in repr(v)]
    return found


def test_the_scan_covers_real_content(obs: EngineObservation) -> None:
    # Without these, "not found" would mean nothing.
    assert len(obs.task_logs) >= 8
    assert {"scheduler", "triggerer", "api-server", "dag-processor"} <= {
        p.rsplit("/", 1)[-1].rsplit("-", 1)[0] for p in obs.component_logs
    }
    assert "Trigger fired event" in "".join(t for p, t in obs.task_logs.items() if ".log.trigger." in p)
    assert obs.db_tables["xcom"]
    assert obs.db_tables["rendered_task_instance_fields"]
    rid = obs.xcom(SECRETS, "deferrable_i2v", "request_id")
    assert rid in obs.db_tables["xcom"]
    assert any(rid in text for text in obs.task_logs.values())
    assert all(r["auth"] == "valid" for r in obs.requests if r["endpoint"] in ("submit", "status", "cancel"))


def test_trigger_rows_were_captured_and_decoded_like_airflow_does(obs: EngineObservation) -> None:
    rows = {(r["dag_id"], r["task_id"]): r for r in obs.trigger_rows}
    row = rows[(SECRETS, "deferrable_i2v")]
    assert row["classpath"] == "airflow_provider_seedance.triggers.seedance.SeedanceJobTrigger"
    # Airflow 3.3 stores the kwargs of a Task SDK deferral as plain JSON even with a Fernet key set (the
    # execution API encrypts only what the client encrypted): all the more reason for them to hold no secret.
    assert row["encrypted"].startswith("{")
    assert row["kwargs"]["request_id"] == obs.xcom(SECRETS, "deferrable_i2v", "request_id")
    assert set(row["kwargs"]) == {"request_id", "seedance_conn_id", "deadline", "started_at", "poll_interval",
                                  "max_poll_interval", "owns_job"}


def test_the_api_key_appears_nowhere(obs: EngineObservation) -> None:
    assert _places(obs, API_KEY_CANARY) == []


def test_echoed_keys_were_scrubbed_not_dropped(obs: EngineObservation) -> None:
    logs = "".join(obs.task_logs.values())
    # The vendor echoed the key in a failed job's error and in a catalogue error: both reached the logs masked.
    assert "rejected: key *** may not do this" in logs
    assert "bad token ***" in logs
    assert obs.task(SECRETS, "vendor_echoes_key")["state"] == "failed"


def test_url_credentials_are_in_no_log_and_no_rendered_field(obs: EngineObservation) -> None:
    # Where they may be: the DAG's own code (the media/webhook URLs are literals in it) and, for the output
    # URL's password, the XComs that hand the URL over (data, not a log).
    *in_dag_code, in_output_url = URL_CANARIES
    for canary in in_dag_code:
        assert set(_places(obs, canary)) <= {"db table dag_code", "db table serialized_dag"}, canary
    places = _places(obs, in_output_url)
    assert places
    assert all(p == "db table xcom" or p.startswith("xcom ") for p in places), places
    assert in_output_url in obs.xcom(SECRETS, "deferrable_i2v")  # the output URL itself is kept intact


def test_credentialed_urls_show_masked(obs: EngineObservation) -> None:
    rendered = obs.rendered_fields[(SECRETS, "credentialed_urls", -1)]
    assert "https://mediauser:***@cdn.example.com/cat.jpg?X-Amz-Signature=***" in rendered
    [log] = [t for p, t in obs.task_logs.items() if "task_id=credentialed_urls/" in p]
    # The emulator refused the URL and quoted it back; the exception text shows it masked.
    assert "https://***:***@cdn.example.com/cat.jpg?X-Amz-Signature=***" in log
    success_lines = "".join(obs.task_logs.values())
    assert "http://***:***@127.0.0.1:" in success_lines  # output URLs are logged, masked
