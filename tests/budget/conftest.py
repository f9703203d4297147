"""Spend-guard fixtures: the emulator as default connection; tests/faults importable (the shared engine run)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

FAULTS = Path(__file__).resolve().parents[1] / "faults"
if str(FAULTS) not in sys.path:
    sys.path.insert(0, str(FAULTS))

if TYPE_CHECKING:
    pass

