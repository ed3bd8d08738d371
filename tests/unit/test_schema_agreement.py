"""The pydantic models and the .avsc files describe the same records: they cannot drift."""

from __future__ import annotations

import types
import typing
from datetime import date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

import pytest
from pydantic import BaseModel

from hub.domain.events import SOURCE_MODELS
from hub.domain.records import HUB_RECORDS
from hub.wire.codec import Codec

MODELS = [*SOURCE_MODELS.values(), *HUB_RECORDS]
PRIMITIVES: dict[str, type] = {
    "string": str, "int": int, "long": int, "double": float, "float": float,
    "boolean": bool, "bytes": bytes,
}  # fmt: skip
LOGICAL: dict[str, type] = {"uuid": UUID, "timestamp-millis": datetime, "date": date}


def _split_optional(annotation: Any) -> tuple[Any, bool]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        assert len(rest) == 1
        return rest[0], True
    return annotation, False


def _check(avro_type: Any, annotation: Any, where: str) -> None:
    if isinstance(avro_type, list):
        assert avro_type[0] == "null" and len(avro_type) == 2, f"{where}: only [null, T] unions"
        _check(avro_type[1], annotation, where)
        return
    if isinstance(avro_type, str):
        assert annotation is PRIMITIVES[avro_type], f"{where}: {annotation} vs {avro_type}"
        return
    kind = avro_type["type"]
    if "logicalType" in avro_type:
        assert annotation is LOGICAL[avro_type["logicalType"]], f"{where}: {annotation}"
    elif kind == "enum":
        assert issubclass(annotation, Enum), where
        assert [m.value for m in annotation] == avro_type["symbols"], f"{where}: symbols differ"
    elif kind == "array":
        assert typing.get_origin(annotation) is list, where
        _check(avro_type["items"], typing.get_args(annotation)[0], f"{where}[]")
    elif kind == "map":
        assert typing.get_origin(annotation) is dict, where
        _check(avro_type["values"], typing.get_args(annotation)[1], f"{where}{{}}")
    elif kind == "record":
        _check_record(avro_type, annotation, where)
    else:
        _check(kind, annotation, where)


def _check_record(schema: dict[str, Any], model: type[BaseModel], where: str) -> None:
    avro_fields = {f["name"]: f for f in schema["fields"]}
    assert set(avro_fields) == set(model.model_fields), f"{where}: field names differ"
    for name, field in avro_fields.items():
        annotation, optional = _split_optional(model.model_fields[name].annotation)
        avro_optional = isinstance(field["type"], list)
        assert optional == avro_optional, f"{where}.{name}: optionality differs"
        if "default" in field:
            assert not model.model_fields[name].is_required(), f"{where}.{name}: needs default"
        _check(field["type"], annotation, f"{where}.{name}")


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_model_agrees_with_its_schema(model: type[Any]) -> None:
    version = Codec().schema(model.SCHEMA)
    _check_record(dict(version.raw), model, model.__name__)


def test_every_current_schema_has_a_model() -> None:
    assert set(Codec().current) == {m.SCHEMA for m in MODELS}
