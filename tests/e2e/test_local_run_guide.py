"""docs/guides/local-run.rst, executed: its named code blocks are the commands this test runs.

Each ``.. code-block:: bash`` with a ``:name: local-run-...`` option is read from the guide and run
through bash as written, in the guide's order: the emulator, the environment (its ``export`` lines),
the database and the pool, Airflow (``airflow standalone``, or the four components), the triggers (one
run without a logical date, one with), the watch command and the log listing. Only the ports (8787,
8080) and ``$HOME`` are replaced by free ones, and the worker/trigger log servers get free ports, so
the run cannot collide with another Airflow on the machine. If the guide changes, this test runs the
new commands; if a command stops working, it fails.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_engine import free_port, wait_for  # tests/e2e is on sys.path (pytest's rootdir-less import)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "guides" / "local-run.rst"
DAG_ID = "example_seedance_content_pipeline"
BIN = Path(sys.executable).parent
#: The ports the guide uses, replaced by free ones.
GUIDE_EMULATOR_PORT, GUIDE_API_PORT = "8787", "8080"


def guide_blocks(text: str) -> dict[str, str]:
    """The guide's named code blocks: ``:name:`` -> the block's text (dedented).

    :param text: the reStructuredText.
    """
    blocks: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith(".. code-block::"):
            i += 1
            continue
        i += 1
        name = None
        while i < len(lines) and lines[i].strip().startswith(":"):
            match = re.match(r"\s+:name:\s*(\S+)", lines[i])
            name = match.group(1) if match else name
            i += 1
        body = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith("   ")):
            body.append(lines[i])
            i += 1
        if name:
            blocks[name] = textwrap.dedent("\n".join(body)).strip()
    return blocks


def commands(block: str) -> list[str]:
    """One command per line (no comment lines, no blank lines)."""
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


class Shell:
    """Runs the guide's commands with bash, in the repository, with one environment; stops what it started.

    :param env: the environment (the guide's exports already applied).
    :param log_dir: where background commands write their output.
    """

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.background: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def run(self, script: str, *, timeout: float = 600) -> str:
        """Run a block to completion (``set -e``); return its output, fail the test on a non-zero exit."""
        proc = subprocess.run(["bash", "-e", "-c", script], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False, start_new_session=True)
        tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert proc.returncode == 0, f"{script}\n-> exit {proc.returncode}\n{tail}"
        return proc.stdout + proc.stderr

    def start(self, name: str, command: str) -> None:
        """Start a long-running command in its own process group, output to ``<name>.log``."""
        path = self.log_dir / f"{name}.log"
        with path.open("wb") as out:
            proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=REPO, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.background[name] = (proc, path)

    def output(self, name: str) -> str:
        """What a background command printed so far."""
        return self.background[name][1].read_text(encoding="utf-8", errors="replace")

    def alive(self, name: str) -> bool:
        """Whether a background command still runs."""
        return self.background[name][0].poll() is None

    def stop_all(self) -> None:
        """Ctrl-C (SIGINT) to each process group, as the guide says; SIGKILL whatever is left."""
        for proc, _ in self.background.values():
            _signal_group(proc.pid, signal.SIGINT)
        deadline = time.monotonic() + 30
        for proc, _ in self.background.values():
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _signal_group(proc.pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(timeout=10)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _query(home: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    db_path = home / "airflow.db"
    if not db_path.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10) as db:
            return list(db.execute(sql, args))
    except sqlite3.OperationalError:  # tables not created yet, or locked by a writer for too long
        return []


def _xcom(home: Path, run_id: str, task_id: str, key: str = "return_value") -> Any:
    rows = _query(home, "SELECT value FROM xcom WHERE dag_id=? AND run_id=? AND task_id=? AND key=?",
                  DAG_ID, run_id, task_id, key)
    return json.loads(rows[0][0]) if rows else None


@pytest.fixture
def guide() -> dict[str, str]:
    """The guide's blocks, with the ports it uses checked to be there (so replacing them means something)."""
    text = GUIDE.read_text(encoding="utf-8")
    assert GUIDE_EMULATOR_PORT in text
    assert GUIDE_API_PORT in text
    return guide_blocks(text)


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    """A shell environment as a newcomer's terminal has it, in a fresh home; stops every process at the end."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")) and k != "AIRFLOW_HOME"}
    env.update({
        "HOME": str(tmp_path / "home"),
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",  # the activated environment of the guide
        "PYTHONUNBUFFERED": "1",
        # Test-only isolation: another Airflow on this machine may hold the default log-server ports.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        # Test-only patience: on a shared, overloaded CI machine a just-started API server can take longer
        # than the default 5 s to answer a worker (the guide's troubleshooting list names this setting).
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
    })
    (tmp_path / "home").mkdir()
    log_dir = tmp_path / "process-logs"
    log_dir.mkdir()
    sh = Shell(env, log_dir)
    try:
        yield sh
    finally:
        sh.stop_all()
        print(f"\n[guide] process logs in {log_dir}")


def test_guide_has_every_step(guide: dict[str, str]) -> None:
    assert set(guide) >= {"local-run-emulator", "local-run-environment", "local-run-setup", "local-run-standalone",
                          "local-run-components", "local-run-trigger", "local-run-watch", "local-run-logs"}
    setup = guide["local-run-setup"]
    # The pool comes first: created in the setup step, before Airflow starts.
    assert "airflow pools set seedance" in setup
    assert "--include-deferred" in setup
    trigger = commands(guide["local-run-trigger"])
    assert any("--logical-date" not in c and " trigger " in f" {c} " for c in trigger)
    assert any("--logical-date" in c for c in trigger)


@pytest.mark.parametrize("mode", ["standalone", "components"])
def test_the_local_run_guide_works_as_written(guide: dict[str, str], shell: Shell, mode: str) -> None:
    emulator_port, api_port = str(free_port()), str(free_port())

    def local(block: str) -> str:
        return guide[block].replace(GUIDE_EMULATOR_PORT, emulator_port).replace(GUIDE_API_PORT, api_port)

    # 1. The emulator: the connection it prints is the one the guide exports.
    [emulator_cmd] = commands(local("local-run-emulator"))
    shell.start("emulator", emulator_cmd)
    printed = wait_for(lambda: re.search(r"export AIRFLOW_CONN_SEEDANCE_DEFAULT='([^']+)'", shell.output("emulator")),
                       timeout=60, what="the emulator's connection line")

    # 2. The environment: the exports, evaluated by bash as a terminal would.
    dumped = shell.run(local("local-run-environment") + "\nenv -0")
    shell.env = dict(item.split("=", 1) for item in dumped.split("\0") if "=" in item)
    assert json.loads(shell.env["AIRFLOW_CONN_SEEDANCE_DEFAULT"]) == json.loads(printed.group(1))
    home = Path(shell.env["AIRFLOW_HOME"])
    videos = Path(shell.env["AIRFLOW_VAR_SEEDANCE_VIDEO_DIR"])

    # 3. The database and the pool, before anything starts.
    shell.run(local("local-run-setup"))
    assert _query(home, "SELECT slots, include_deferred FROM slot_pool WHERE pool='seedance'") == [(2, 1)]

    # 4. Airflow.
    if mode == "standalone":
        [standalone] = commands(local("local-run-standalone"))
        shell.start("standalone", standalone)
        wait_for(lambda: "Airflow is ready" in shell.output("standalone") or not shell.alive("standalone"),
                 timeout=400, interval=2, what="airflow standalone to print 'Airflow is ready'")
        assert shell.alive("standalone"), shell.output("standalone")[-3000:]
    else:
        for command in commands(local("local-run-components")):
            shell.start(command.split()[1], command)
    wait_for(lambda: _query(home, "SELECT dag_id FROM dag WHERE dag_id=?", DAG_ID), timeout=300, interval=2,
             what=f"{DAG_ID} parsed")

    # 5. The triggers: one manual run without a logical date, one with.
    shell.run(local("local-run-trigger"))

    def finished_runs() -> list[tuple[Any, ...]] | None:
        runs = _query(home, "SELECT run_id, run_type, logical_date, run_after, state FROM dag_run WHERE dag_id=?",
                      DAG_ID)
        manual = [r for r in runs if r[1] == "manual"]
        done = len(manual) == 2 and all(r[4] in ("success", "failed") for r in runs)
        return runs if done else None

    runs = wait_for(finished_runs, timeout=400, interval=2, what="both manual runs to finish")
    states = {run_id: state for run_id, _, _, _, state in runs}
    assert set(states.values()) == {"success"}, states
    manual = {r[2] is None: r for r in runs if r[1] == "manual"}
    undated, dated = manual[True], manual[False]

    # The run without a logical date filed its video under its run_after day; the other under its logical
    # date; each under its own run id (':' and '+' made '-'), so runs of one day never overwrite each other.
    def run_key(run_id: str) -> str:
        return run_id.replace(":", "-").replace("+", "-")

    undated_file = videos / "content_pipeline" / str(undated[3])[:10] / f"{run_key(undated[0])}.mp4"
    dated_file = videos / "content_pipeline" / "2025-06-01" / f"{run_key(dated[0])}.mp4"
    for run, stored in ((undated, undated_file), (dated, dated_file)):
        run_id = run[0]
        assert stored.read_bytes()[4:8] == b"ftyp"
        assert _xcom(home, run_id, "generate_video") == f"file://{stored}"
        assert _xcom(home, run_id, "announce_video") == f"file://{stored}"
        assert _xcom(home, run_id, "generate_video", "output_url").startswith(f"http://127.0.0.1:{emulator_port}/files/")
        assert _query(home, "SELECT pool FROM task_instance WHERE dag_id=? AND run_id=? AND task_id='generate_video'",
                      DAG_ID, run_id) == [("seedance",)]
        # Waited in the triggerer: its log is beside the task's, named by the triggerer's job id.
        folder = home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=generate_video"
        [trigger_log] = list(folder.glob("attempt=1.log.trigger.*.log"))
        assert "Trigger fired event" in trigger_log.read_text(encoding="utf-8", errors="replace")
        task_log = (folder / "attempt=1.log").read_text(encoding="utf-8", errors="replace")
        assert "Saved the video of" in task_log
        # The pool check runs only under `airflow dags test`; a scheduler enforces pools itself.
        assert "does not exist" not in task_log

    # 6. Watching: the guide's command lists the runs and their states.
    listed = shell.run(local("local-run-watch"))
    for run_id in states:
        assert run_id in listed
    assert "success" in listed

    # 7. The logs are where the guide says.
    listing = shell.run(local("local-run-logs"))
    assert re.search(r"^attempt=1\.log$", listing, flags=re.MULTILINE), listing
    assert re.search(r"^attempt=1\.log\.trigger\.\d+\.log$", listing, flags=re.MULTILINE), listing
