"""Fault tests: the emulator as the default connection (for the in-process property tests)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

