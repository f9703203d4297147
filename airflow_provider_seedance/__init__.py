"""Apache Airflow provider for the Seedance 2.0 Open API (image- and text-to-video generation)."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "get_provider_info"]

#: Connection extras the hook understands (declarative form fields for Airflow >= 3.2).
CONN_FIELDS: dict[str, Any] = {
    "timeout": {
        "label": "Request timeout (seconds)",
        "description": "Total time allowed for one HTTP request (default 30).",
        "schema": {"type": ["number", "null"], "minimum": 1},
    },
    "proxies": {
        "label": "Proxies (JSON)",
        "description": 'requests-style mapping, e.g. {"https": "http://proxy:3128"}.',
        "schema": {"type": ["object", "string", "null"]},
    },
    "verify_ssl": {
        "label": "Verify TLS certificates",
        "description": "Set false only for a test endpoint with a self-signed certificate.",
        "schema": {"type": ["boolean", "null"], "default": True},
    },
    "ca_bundle": {
        "label": "CA bundle (path)",
        "description": (
            "PEM file of the certificate authorities to trust (a corporate CA). Used by workers and triggerers "
            "alike; default: REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE if set, else certifi's bundle."
        ),
        "schema": {"type": ["string", "null"]},
    },
    "allow_insecure_http": {
        "label": "Allow plain http:// to a remote host",
        "description": "Sends the API key unencrypted. Only for a trusted test endpoint; loopback needs no opt-in.",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "price_table": {
        "label": "Price table override (JSON)",
        "description": (
            "Credits per model, used for estimates and budgets before the live catalogue and the bundled "
            'table, e.g. {"seedance-2.0": {"perSecond": {"720p": 8, "1080p": 16}, "referenceMediaSurcharge": 24}}.'
        ),
        "schema": {"type": ["object", "string", "null"]},
    },
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata, read by Airflow's ProvidersManager (entry point)."""
    integration = "Seedance"
    return {
        "package-name": "airflow-provider-seedance",
        "name": "Seedance",
        "description": "Generate videos with the Seedance 2.0 Open API (image-to-video, text-to-video).",
        "versions": [__version__],
        "integrations": [{"integration-name": integration, "external-doc-url": "https://www.seedance2.ink"}],
        "hooks": [{"integration-name": integration, "python-modules": ["airflow_provider_seedance.hooks.seedance"]}],
        "operators": [
            {"integration-name": integration, "python-modules": ["airflow_provider_seedance.operators.seedance",
                                                                 "airflow_provider_seedance.operators.batch"]}
        ],
        "sensors": [
            {"integration-name": integration, "python-modules": ["airflow_provider_seedance.sensors.seedance"]}
        ],
        "triggers": [
            {"integration-name": integration, "python-modules": ["airflow_provider_seedance.triggers.seedance"]}
        ],
        "extra-links": ["airflow_provider_seedance.links.seedance.SeedanceVideoLink"],
        # Media URLs the hook reports as hook-lineage assets become OpenLineage datasets (scheme://host +
        # path, never the query). handler None: Airflow's generic URI normalization, nothing more.
        "asset-uris": [
            {
                "schemes": ["http", "https"],
                "handler": None,
                "to_openlineage_converter": (
                    "airflow_provider_seedance.lineage.hook_lineage.convert_url_asset_to_openlineage"
                ),
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_seedance.hooks.seedance.SeedanceHook",
                "hook-name": "Seedance",
                "connection-type": "seedance",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"host": "Base URL", "password": "API key"},
                    "placeholders": {"host": "https://www.seedance2.ink", "password": "sd2_live_..."},
                },
                "conn-fields": CONN_FIELDS,
            }
        ],
    }
