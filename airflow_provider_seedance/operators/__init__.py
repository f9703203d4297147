"""Operators of the Seedance provider."""

from __future__ import annotations
