"""`make demo`'s driver: succeeds offline, prints what it promises, leaves no process behind."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.airflow_cli

REPO = Path(__file__).resolve().parents[2]


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line or environment contains ``text`` (this user's processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        for name in ("cmdline", "environ"):
            try:
                if text.encode() in (entry / name).read_bytes():
                    found.append(int(entry.name))
                    break
            except OSError:
                continue
    return found


def test_demo_runs_and_cleans_up(tmp_path):
    output = tmp_path / "demo-output"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}

    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--output", str(output)],
                          env=env, capture_output=True, text=True, timeout=600, check=False)

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    request_id = re.search(r"request id : (req_\w+)", proc.stdout).group(1)
    output_url = re.search(r"output URL : (\S+)", proc.stdout).group(1)
    video = Path(re.search(r"video      : (\S+)", proc.stdout).group(1))
    assert output_url.endswith(f"/files/{request_id}.mp4")
    assert video == output / "videos" / "example_seedance_image_to_video" / f"{request_id}.mp4"
    assert video.read_bytes()[4:8] == b"ftyp"
    # The Airflow home is the demo's own, not the caller's.
    assert (output / "airflow-home" / "airflow.db").exists()
    # Nothing it started is still running: the emulator's port is closed, no process uses its home.
    parts = urlsplit(output_url)
    with socket.socket() as sock:
        assert sock.connect_ex((parts.hostname, parts.port)) != 0
    if Path("/proc").is_dir():
        assert _processes_mentioning(str(output)) == []


def test_demo_exits_non_zero_when_the_dag_run_fails(tmp_path):
    output = tmp_path / "demo-output"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}

    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "demo.py"), "--output", str(output),
         "--conf", '{"image_url": "ftp://example.com/photo.jpg"}'],  # refused by validation in the task
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )

    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "DEMO FAILED: airflow dags test example_seedance_image_to_video failed" in proc.stderr
    assert "Invalid media_urls" in (output / "logs" / "dags-test.log").read_text()
    if Path("/proc").is_dir():
        assert _processes_mentioning(str(output)) == []
