"""The wait-mode tests use the root conftest's ``emu``; nothing of their own is shared."""

from __future__ import annotations
