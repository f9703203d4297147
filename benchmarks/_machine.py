"""A description of the machine and software a benchmark ran on (printed and written with the results)."""

from __future__ import annotations

import os
import platform
import time
from importlib import metadata
from typing import Any

__all__ = ["describe_machine"]

_PACKAGES = ("apache-airflow", "apache-airflow-providers-http", "aiohttp", "tenacity", "greenback",
             "airflow-provider-seedance")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _virtualized() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return " hypervisor" in f.read()
    except OSError:
        return False


def _memory_gib() -> float:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_machine() -> dict[str, Any]:
    """CPU, memory, OS, Python, package versions and the current load average."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "virtual_machine": _virtualized(),
        "memory_gib": round(_memory_gib(), 1),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {name: _version(name) for name in _PACKAGES},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
