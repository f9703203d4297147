"""The connection form of Airflow < 3.2 (newer versions read ``conn-fields`` from the provider info), derived
from the same :data:`~airflow_provider_seedance.CONN_FIELDS`, so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_seedance import CONN_FIELDS, get_provider_info

__all__ = ["connection_form_widgets", "form_field_specs", "ui_field_behaviour"]

CONN_TYPE = "seedance"


def ui_field_behaviour() -> dict[str, Any]:
    """The form's hidden/relabelled fields for Airflow < 3.2, from the provider info (one source)."""
    conn = next(c for c in get_provider_info()["connection-types"] if c["connection-type"] == CONN_TYPE)
    behaviour = conn["ui-field-behaviour"]
    return {
        "hidden_fields": list(behaviour.get("hidden-fields", [])),
        "relabeling": dict(behaviour.get("relabeling", {})),
        "placeholders": dict(behaviour.get("placeholders", {})),
    }


def form_field_specs() -> list[dict[str, Any]]:
    """The extra fields of the connection form: name, kind (boolean/string), label, description, default."""
    specs = []
    for name, definition in CONN_FIELDS.items():
        schema = definition.get("schema", {})
        types = schema.get("type", [])
        types = [types] if isinstance(types, str) else list(types)
        specs.append(
            {
                "name": name,
                "kind": "boolean" if "boolean" in types else "string",
                "label": definition.get("label", name),
                "description": definition.get("description", ""),
                "default": schema.get("default"),
            }
        )
    return specs


def connection_form_widgets() -> dict[str, Any]:
    """WTForms fields for Airflow < 3.2 (needs wtforms, which those versions' UI brings)."""
    from wtforms import BooleanField, StringField
    from wtforms.validators import Optional

    widgets: dict[str, Any] = {}
    for spec in form_field_specs():
        if spec["kind"] == "boolean":
            widgets[spec["name"]] = BooleanField(
                spec["label"], description=spec["description"], default=bool(spec["default"])
            )
        else:
            # Numbers and JSON are typed as text: the hook parses and checks them with clear errors.
            widgets[spec["name"]] = StringField(spec["label"], description=spec["description"], validators=[Optional()])
    return widgets
