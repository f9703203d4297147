"""DAG-parse overhead: what importing the provider's operator and sensor modules adds to a parse.

Airflow 3 parses each DAG file in a fresh child process, so a provider's import cost is paid on every
parse. Each sample is a fresh interpreter that first imports, untimed, ``airflow.sdk`` (the issue's
reference point) or what the DAG processor's parsing child has loaded (``airflow.dag_processing.processor``,
which already holds ``airflow.triggers.base``), then times the import of the modules under test with
``time.perf_counter`` and lists which heavy modules they load. Variants run interleaved, so machine noise
hits them alike; the median counts.

Standalone: ``python benchmarks/import_overhead.py [--runs 20]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

from _env import isolate_airflow_home
from _stats import median, percentile

__all__ = ["HEAVY_MODULES", "VARIANTS", "measure_import_overhead"]

#: Modules a DAG parse should not need: HTTP clients, the retry library, the hook and trigger machinery.
HEAVY_MODULES = (
    "aiohttp",
    "requests",
    "urllib3",
    "tenacity",
    "yarl",
    "airflow_provider_seedance.hooks.seedance",
    "airflow_provider_seedance.emulator.server",
)

SEEDANCE_MODULES = ("airflow_provider_seedance.operators.seedance", "airflow_provider_seedance.sensors.seedance")
#: What the DAG processor's parsing child has imported before it runs a DAG file (Airflow 3.3).
DAG_PROCESSOR = ("airflow.sdk", "airflow.dag_processing.processor")

#: name -> (imported first, not timed; imported and timed).
VARIANTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "seedance operator + sensor": (("airflow.sdk",), SEEDANCE_MODULES),
    "http operator + sensor (baseline)": (
        ("airflow.sdk",),
        ("airflow.providers.http.operators.http", "airflow.providers.http.sensors.http"),
    ),
    "seedance operator + sensor, in the DAG processor": (DAG_PROCESSOR, SEEDANCE_MODULES),
    "seedance hook (first trigger run)": (
        ("airflow.sdk", "airflow_provider_seedance.triggers.seedance"),
        ("airflow_provider_seedance.hooks.seedance",),
    ),
}

_PROBE = """
import json, sys, time
for name in {preamble!r}:
    __import__(name)
before = set(sys.modules)
start = time.perf_counter()
for name in {modules!r}:
    __import__(name)
elapsed = time.perf_counter() - start
print(json.dumps({{
    "seconds": elapsed,
    "new_modules": len(set(sys.modules) - before),
    "heavy": {{m: ("preloaded" if m in before else "imported" if m in sys.modules else "no") for m in {heavy!r}}},
}}))
"""


def _probe(preamble: tuple[str, ...], modules: tuple[str, ...]) -> dict[str, Any]:
    code = _PROBE.format(preamble=preamble, modules=modules, heavy=HEAVY_MODULES)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _top_imports(modules: tuple[str, ...], limit: int = 8, runs: int = 5) -> list[tuple[str, float]]:
    """The slowest modules loaded by ``modules`` on top of airflow.sdk: median ``-X importtime`` self time, ms."""
    code = "import airflow.sdk, sys; sys.stderr.write('=== START\\n');" + "".join(f"import {m};" for m in modules)
    times: dict[str, list[float]] = {}
    for _ in range(runs):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", code], check=True, capture_output=True,
                             text=True).stderr
        for line in err.split("=== START", 1)[-1].splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, _, name = line[len("import time:"):].split("|", 2)
            times.setdefault(name.strip(), []).append(int(self_us) / 1000.0)
    rows = [(name, median(values)) for name, values in times.items()]
    return sorted(rows, key=lambda r: -r[1])[:limit]


def measure_import_overhead(runs: int = 20) -> dict[str, Any]:
    """Time each variant in ``runs`` fresh interpreters (interleaved); medians, p90 and module findings.

    :param runs: samples per variant.
    """
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    for _ in range(runs):
        for name, modules in VARIANTS.items():
            samples[name].append(_probe(*modules))
    first = next(iter(VARIANTS))
    result: dict[str, Any] = {"runs": runs, "variants": {}}
    for name, rows in samples.items():
        ms = [row["seconds"] * 1000.0 for row in rows]
        result["variants"][name] = {
            "after": list(VARIANTS[name][0]),
            "modules": list(VARIANTS[name][1]),
            "median_ms": median(ms),
            "p90_ms": percentile(ms, 90),
            "min_ms": min(ms),
            "new_modules": rows[-1]["new_modules"],
            "heavy": rows[-1]["heavy"],
            "top_imports": _top_imports(VARIANTS[name][1]) if name == first else [],
        }
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line: print the medians and the heavy-module findings.

    :param argv: arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    isolate_airflow_home()
    result = measure_import_overhead(args.runs)
    for name, row in result["variants"].items():
        print(f"{name:36s} median {row['median_ms']:6.1f} ms  p90 {row['p90_ms']:6.1f} ms  "
              f"{row['new_modules']} new modules")
        loaded = [m for m, state in row["heavy"].items() if state == "imported"]
        print(f"{'':36s} heavy modules it imports: {', '.join(loaded) or 'none'}")
        if row["top_imports"]:
            print(f"{'':36s} slowest: " + ", ".join(f"{m} {t:.1f} ms" for m, t in row["top_imports"][:5]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
