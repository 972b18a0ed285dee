"""JSON Schemas of the configuration files, generated from their models, for editors and other tools.

`schemas/station.schema.json` and `schemas/machine_profile.schema.json` are these, committed;
`excap check-config --json-schema station|profile` prints them (a test keeps the files up to date).
"""

import json
from typing import Any

from excap.drivers.config_schema import ConfigModel
from excap.drivers.machine.profile_schema import ProfileDocument
from excap.schemas import SCHEMAS_DIR
from excap.station.schema import StationDocument

DOCUMENTS: dict[str, tuple[type[ConfigModel], str]] = {
    "station": (StationDocument, "station.schema.json"),
    "profile": (ProfileDocument, "machine_profile.schema.json"),
}
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def json_schema(kind: str) -> dict[str, Any]:
    model, _ = DOCUMENTS[kind]
    return {"$schema": DIALECT, **model.model_json_schema(by_alias=True)}


def json_schema_text(kind: str) -> str:
    return json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n"


def committed_path(kind: str) -> Any:
    return SCHEMAS_DIR / DOCUMENTS[kind][1]
