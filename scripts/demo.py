"""The one-command demo (``make demo``): a real Airflow run of an example DAG against the local emulator.

Steps: an isolated ``AIRFLOW_HOME`` under ``demo-output/`` -> ``airflow db migrate`` -> the Seedance
emulator in a subprocess -> ``airflow dags test example_seedance_image_to_video`` with ``dags/`` as
the DAGs folder -> check the saved video (MP4 ``ftyp`` box; ``ffprobe`` when installed) -> print the
request id, the output URL and the path of the video.

Offline (the emulator needs no network), leaves no process behind (each child is stopped by its pid in
``finally``), exits non-zero when any step fails. Logs of each step are in ``demo-output/logs/``.

To run the same DAG against the real service, see the docstring of
``dags/example_seedance_image_to_video.py`` (or the hint printed at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DAG_ID = "example_seedance_image_to_video"
# The emulator's job lasts 1.5 s (queued 0.5 s + processing 1 s): short, but long enough that the
# operator really waits for it.
EMULATOR_TIME_SCALE = 0.5


class DemoError(RuntimeError):
    """A demo step failed; the message says which and where its log is."""


def _airflow_cmd() -> list[str]:
    script = Path(sys.executable).with_name("airflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "airflow"]


def _run_step(name: str, cmd: list[str], env: dict[str, str], log_path: Path, *, verbose: bool,
              timeout: float) -> None:
    """Run one command in its own process group; on failure show the end of its log.

    :param name: what the step does (for messages).
    :param cmd: the command.
    :param env: its environment.
    :param log_path: where its output goes.
    :param verbose: also stream the output to the console.
    :param timeout: seconds before it is stopped and the demo fails.
    """
    print(f"==> {name}  (log: {_shown(log_path)})", flush=True)
    started = time.monotonic()
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        # A silent hang must not hang the demo: the watchdog stops the whole process group.
        watchdog = threading.Timer(timeout, _stop_group, args=(proc,))
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if verbose:
                    sys.stdout.write(line)
            proc.wait()
        finally:
            watchdog.cancel()
            _stop_group(proc)
    if time.monotonic() - started >= timeout:
        raise DemoError(f"{name} took more than {timeout:.0f} s and was stopped (log: {log_path})")
    if proc.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]
        print("\n".join("    " + line for line in tail), file=sys.stderr)
        raise DemoError(f"{name} failed with exit code {proc.returncode} (full log: {log_path})")
    print(f"    done in {time.monotonic() - started:.1f} s", flush=True)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def _stop_group(proc: subprocess.Popen[Any]) -> None:
    """Stop a child started with ``start_new_session`` and everything it spawned (by its group id)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
    else:
        # The leader exited; make sure it left no children behind in its group.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _get_json(url: str, api_key: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the local emulator
        return json.loads(response.read())


def check_playable(path: Path) -> str:
    """Check the file is an MP4 (``ftyp`` box first); with ffprobe, that it has a video stream.

    :param path: the saved video.
    :return: a short description (size, duration when ffprobe is available).
    """
    data = path.read_bytes()[:12]
    if len(data) < 8 or data[4:8] != b"ftyp":
        raise DemoError(f"{path} is not an MP4 file (no 'ftyp' box at the start)")
    size = path.stat().st_size
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        return f"{size} bytes, MP4 'ftyp' box present (ffprobe not installed: decoding not checked)"
    probe = subprocess.run(
        [ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name:format=duration",
         "-of", "json", str(path)],
        capture_output=True, text=True, timeout=30, check=False,
    )
    if probe.returncode != 0:
        raise DemoError(f"ffprobe could not read {path}: {probe.stderr.strip()}")
    info = json.loads(probe.stdout or "{}")
    streams = info.get("streams") or []
    if not streams:
        raise DemoError(f"ffprobe found no video stream in {path}")
    duration = (info.get("format") or {}).get("duration", "?")
    return f"{size} bytes, {streams[0].get('codec_name')} video, {duration} s (checked with ffprobe)"


def _environment(home: Path, videos: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "AIRFLOW_VAR_SEEDANCE_VIDEO_DIR": str(videos),
        "PYTHONUNBUFFERED": "1",
    })
    return env


def run_demo(output: Path, *, verbose: bool, conf: str | None = None) -> dict[str, str]:
    """Run every step; return the request id, output URL and video path.

    :param output: the demo's working directory (``demo-output``).
    :param verbose: stream Airflow's output to the console.
    :param conf: the DAG run's configuration (JSON), e.g. your own ``prompt``.
    """
    from airflow_provider_seedance.emulator.testing import spawn_emulator

    home, videos, logs = output / "airflow-home", output / "videos", output / "logs"
    for directory in (home, videos, logs):
        directory.mkdir(parents=True, exist_ok=True)
    env = _environment(home, videos)
    _run_step("airflow db migrate", [*_airflow_cmd(), "db", "migrate"], env, logs / "db-migrate.log",
              verbose=verbose, timeout=300)

    print("==> starting the Seedance emulator", flush=True)
    with spawn_emulator(time_scale=EMULATOR_TIME_SCALE) as emulator:
        print(f"    listening on {emulator.base_url}", flush=True)
        env["AIRFLOW_CONN_SEEDANCE_DEFAULT"] = emulator.connection_json
        try:
            conf_args = ["-c", conf] if conf else []
            _run_step(f"airflow dags test {DAG_ID}", [*_airflow_cmd(), "dags", "test", DAG_ID, *conf_args], env,
                      logs / "dags-test.log", verbose=verbose, timeout=300)
            submits = emulator.admin.stats()["submits"]
            if submits != 1:
                raise DemoError(f"expected exactly one generation, the emulator saw {submits} submits")
            request_id = emulator.admin.jobs()[0]["requestId"]
            # Ask the API itself, as the operator did: the status answer carries the output URL.
            status = _get_json(f"{emulator.base_url}/api/open/v1/video/generations/{request_id}", emulator.api_key)
        finally:
            env.pop("AIRFLOW_CONN_SEEDANCE_DEFAULT", None)
    if status.get("status") != "succeeded":
        raise DemoError(f"generation {request_id} ended {status.get('status')}")
    output_url = (status.get("output") or {}).get("url", "")
    video = videos / DAG_ID / f"{request_id}.mp4"
    if not video.is_file():
        raise DemoError(f"the DAG succeeded but {video} does not exist")
    if list(video.parent.glob(".*.part")):
        raise DemoError(f"temporary download files left in {video.parent}")
    description = check_playable(video)
    return {"request_id": request_id, "output_url": output_url, "video": str(video), "checked": description}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code.

    :param argv: command-line arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=REPO / "demo-output", help="working directory")
    parser.add_argument("--fresh", action="store_true", help="delete the previous demo's Airflow home first")
    parser.add_argument("--verbose", "-v", action="store_true", help="stream Airflow's output")
    parser.add_argument("--conf", help='DAG run configuration (JSON), e.g. \'{"prompt": "A fox in the snow"}\'')
    args = parser.parse_args(argv)
    output: Path = args.output.resolve()
    if args.fresh and output.exists():
        shutil.rmtree(output)
    started = time.monotonic()
    try:
        result = run_demo(output, verbose=args.verbose, conf=args.conf)
    except (DemoError, OSError, TimeoutError, RuntimeError) as exc:
        print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nDEMO INTERRUPTED (all processes it started were stopped)", file=sys.stderr)
        return 130
    print(
        "\nSeedance demo succeeded in {:.1f} s\n"
        "  request id : {request_id}\n"
        "  output URL : {output_url}   (served by the emulator, gone now that it stopped)\n"
        "  video      : {video}\n"
        "               {checked}\n"
        "\nSame DAG against the real service (costs credits):\n"
        "  export AIRFLOW_CONN_SEEDANCE_DEFAULT='{{\"conn_type\": \"seedance\", "
        "\"host\": \"https://www.seedance2.ink\", \"password\": \"sd2_live_...\"}}'\n"
        "  airflow dags test {dag} -c '{{\"image_url\": \"https://<your public image>.jpg\"}}'".format(
            time.monotonic() - started, dag=DAG_ID, **result
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
