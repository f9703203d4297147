"""Hooks of the Seedance provider: :class:`~airflow_provider_seedance.hooks.seedance.SeedanceHook`."""

from __future__ import annotations
