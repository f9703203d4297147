"""Security tests: the engine run of tests/faults (shared, see engine_run.py) and the emulator as default connection."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

FAULTS = Path(__file__).resolve().parents[1] / "faults"
if str(FAULTS) not in sys.path:
    sys.path.insert(0, str(FAULTS))

if TYPE_CHECKING:
    pass

