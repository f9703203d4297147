"""Fixtures: the emulator, reachable as the default Seedance connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

