"""The bundled MP4, the command line, and the test helpers (thread, subprocess, connection strings)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from emu_client import T2V, Api

from airflow_provider_seedance.emulator.server import sample_video_path
from airflow_provider_seedance.emulator.testing import DEFAULT_API_KEY, EmulatorHandle, run_emulator, spawn_emulator


def test_output_url_serves_the_bundled_mp4(api: Api, emu: EmulatorHandle) -> None:
    rid = api.submit_ok(T2V)
    url = api.wait_status(rid, {"succeeded"})["output"]["url"]
    resp = requests.get(url, timeout=10)  # public like a bucket URL: no key
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "video/mp4"
    assert resp.content == sample_video_path().read_bytes()
    assert resp.content[4:8] == b"ftyp"
    part = requests.get(url, headers={"Range": "bytes=0-99"}, timeout=10)
    assert (part.status_code, len(part.content)) == (206, 100)
    assert emu.admin.stats()["files"] == 2


def test_no_file_before_success_or_for_unknown_ids(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(queued_seconds=60)
    rid = api.submit_ok()
    assert requests.get(f"{emu.base_url}/files/{rid}.mp4", timeout=10).status_code == 404
    assert requests.get(f"{emu.base_url}/files/req_nope.mp4", timeout=10).status_code == 404


def test_output_can_expire(api: Api, emu: EmulatorHandle) -> None:
    emu.admin.set_next_jobs(queued_seconds=0, processing_seconds=0, output_expires_seconds=0)
    rid = api.submit_ok()
    body = api.get(rid).json()
    assert body["status"] == "succeeded"
    assert requests.get(body["output"]["url"], timeout=10).status_code == 404


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not installed")
def test_bundled_mp4_is_a_small_playable_h264_video() -> None:
    path = sample_video_path()
    assert path.stat().st_size < 20_000
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )
    [stream] = json.loads(probe.stdout)["streams"]
    assert stream == {"codec_name": "h264", "width": 160, "height": 90}
    decode = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                            capture_output=True, text=True, check=False)
    assert decode.returncode == 0
    assert decode.stderr == ""


def test_handle_gives_connection_strings_without_leaking_the_key_in_repr() -> None:
    with run_emulator(time_scale=0.01, api_keys=["sd2_custom_key_1"], balance=10) as emu:
        assert emu.base_url.startswith("http://127.0.0.1:")
        assert emu.api_key == "sd2_custom_key_1"
        conn = json.loads(emu.connection_json)
        assert conn == {"conn_type": "seedance", "host": emu.base_url, "password": "sd2_custom_key_1"}
        port = emu.base_url.rsplit(":", 1)[1]
        assert emu.connection_uri == f"seedance://:sd2_custom_key_1@127.0.0.1:{port}"
        assert emu.env == {"AIRFLOW_CONN_SEEDANCE_DEFAULT": emu.connection_json}
        assert "sd2_custom_key_1" not in repr(emu)
        assert "sd2_custom_key_1" not in repr(emu.admin)
        assert Api(emu).submit(T2V).status_code == 402  # balance 10 < 40
    with pytest.raises(requests.ConnectionError):
        requests.get(emu.base_url + "/openapi.json", timeout=2)  # stopped on exit


def test_spawned_emulator_runs_in_a_subprocess_and_stops() -> None:
    with spawn_emulator(time_scale=0.01) as emu:
        assert emu.process is not None
        assert emu.process.poll() is None
        assert emu.api_key == DEFAULT_API_KEY
        rid = Api(emu).submit_ok(T2V)
        assert Api(emu).wait_status(rid, {"succeeded"})["status"] == "succeeded"
        assert emu.admin.stats()["submits"] == 1
        process = emu.process
    assert process.poll() is not None


def test_cli_prints_url_and_connection_and_applies_flags(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_seedance.emulator", "--port", "0", "--time-scale", "0.5",
         "--api-key", "sd2_cli_key", "--balance", "500",
         "--fault", "kind=http,status=429,retry_after=3,endpoint=status,times=1",
         "--next-job", '{"fail_with": "from the cli"}'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
        assert lines[0].startswith("Seedance emulator listening on http://127.0.0.1:")
        base_url = lines[0].split()[4]
        export = next(line for line in lines if "AIRFLOW_CONN_SEEDANCE_DEFAULT" in line)
        conn = json.loads(export.split("=", 1)[1].strip().strip("'"))
        assert conn == {"conn_type": "seedance", "host": base_url, "password": "sd2_cli_key"}
        emu = EmulatorHandle(base_url=base_url, api_key="sd2_cli_key")
        config = emu.admin.config()
        assert (config["time_scale"], config["balance"]) == (0.5, 500)
        assert emu.admin.faults()[0]["retry_after"] == 3
        assert emu.admin.next_jobs()[0]["fail_with"] == "from the cli"
        assert Api(emu).submit(T2V).status_code == 200
        assert emu.admin.next_jobs() == []
        emu.admin.reset()  # start-up faults and behaviours are re-armed
        assert emu.admin.faults()[0]["hits"] == 0
        assert len(emu.admin.next_jobs()) == 1
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--fault", "kind=explode"], "kind must be one of"), (["--time-scale", "-1"], "time_scale must be")],
)
def test_cli_rejects_bad_flags_with_exit_code_2(args: list[str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "airflow_provider_seedance.emulator", "--port", "0", *args],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert message in result.stderr


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("seedance-emulator")
    if not script.exists():
        pytest.skip("console script not installed in this environment")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=30, check=True)
    assert "--time-scale" in result.stdout
    assert "--fault" in result.stdout
