"""The ``seedanceGeneration`` OpenLineage run facet: what one Seedance generation was and what it cost.

Its JSON schema ships in the package (``lineage/schemas/SeedanceGenerationRunFacet.json``) and its
``_schemaURL`` names it. Needs ``openlineage-python`` (installed with the OpenLineage provider).
"""

from __future__ import annotations

import attr
from openlineage.client.facet_v2 import RunFacet

__all__ = ["FACET_KEY", "SCHEMA_FILE", "SCHEMA_URL", "SeedanceGenerationRunFacet"]

#: Key of the facet in ``run.facets``.
FACET_KEY = "seedanceGeneration"
#: The schema inside the package (``importlib.resources``: ``airflow_provider_seedance.lineage``).
SCHEMA_FILE = "schemas/SeedanceGenerationRunFacet.json"
#: ``$id`` of the shipped schema plus the facet's JSON pointer; bump ``1-0-0`` with any field change.
SCHEMA_URL = (
    "https://raw.githubusercontent.com/airflow-provider-seedance/airflow-provider-seedance/main/"
    "airflow_provider_seedance/lineage/schemas/SeedanceGenerationRunFacet.json#/$defs/SeedanceGenerationRunFacet"
)


@attr.define
class SeedanceGenerationRunFacet(RunFacet):
    """One Seedance generation, as the run of an Airflow task saw it.

    :param requestId: the vendor's request id (None when nothing was submitted yet).
    :param model: model id.
    :param generationType: ``image-to-video`` or ``text-to-video``.
    :param duration: seconds requested (None: the model's default).
    :param resolution: ``480p``, ``720p`` or ``1080p`` (None: the model's default).
    :param aspectRatio: ``16:9``, ``9:16`` or ``1:1`` (None: the model's default).
    :param mediaCount: number of reference media.
    :param creditsEstimated: the provider's estimate before submitting.
    :param creditsCharged: what the vendor said it charged.
    :param vendorStatus: the vendor's status of the job when the event was built.
    :param persisted: whether the video was saved to object storage (``persist_to``).
    :param connectionId: the Airflow connection of the Seedance API the job lives at (not a secret).
    """

    requestId: str | None = attr.field(default=None)  # OpenLineage field names are camelCase
    model: str | None = attr.field(default=None)
    generationType: str | None = attr.field(default=None)
    duration: int | None = attr.field(default=None)
    resolution: str | None = attr.field(default=None)
    aspectRatio: str | None = attr.field(default=None)
    mediaCount: int | None = attr.field(default=None)
    creditsEstimated: int | None = attr.field(default=None)
    creditsCharged: int | None = attr.field(default=None)
    vendorStatus: str | None = attr.field(default=None)
    persisted: bool | None = attr.field(default=None)
    connectionId: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return SCHEMA_URL
