"""One parametrized contract test over every event class of the catalogue."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from schemas import CATALOGUE, Event, event_classes
from schemas.export import JSON_DIR, json_schemas, stale_files
from tests.schemas.samples import samples

BY_CLASS = {type(s): s for s in samples()}


def test_every_event_class_has_a_sample() -> None:
    assert set(event_classes()) == set(BY_CLASS)


@pytest.fixture(params=list(event_classes()), ids=lambda c: c.__name__)
def sample(request: pytest.FixtureRequest) -> Event:
    return BY_CLASS[request.param]


def test_json_round_trip(sample: Event) -> None:
    again = type(sample).model_validate_json(sample.model_dump_json())
    assert again == sample
    assert again.model_dump_json() == sample.model_dump_json()


def test_frozen(sample: Event) -> None:
    with pytest.raises(ValidationError):
        sample.event_id = sample.event_id  # type: ignore[misc]


def test_extra_fields_rejected(sample: Event) -> None:
    data = sample.model_dump(mode="json") | {"surprise": 1}
    with pytest.raises(ValidationError, match="surprise"):
        type(sample).model_validate(data)


def test_envelope_fields(sample: Event) -> None:
    cls = type(sample)
    hints = typing.get_type_hints(cls)
    assert typing.get_origin(hints["event_type"]) is typing.Literal
    assert sample.schema_version == cls.SCHEMA_VERSION >= 1
    assert sample.occurred_at.tzinfo is not None
    assert cls.__doc__ and cls.__doc__.strip()


def test_newer_schema_version_refused(sample: Event) -> None:
    data = sample.model_dump(mode="json") | {"schema_version": type(sample).SCHEMA_VERSION + 1}
    with pytest.raises(ValidationError, match="newer than"):
        type(sample).model_validate(data)


def test_registered_in_catalogue(sample: Event) -> None:
    homes = [name for name, spec in CATALOGUE.items() if type(sample) in spec.event_classes]
    assert homes, f"{type(sample).__name__} is on no topic"


def test_event_types_unique() -> None:
    names = [cls.type_name() for cls in event_classes()]
    assert len(names) == len(set(names))


def test_json_schemas_in_sync() -> None:
    stale = stale_files(JSON_DIR)
    assert not stale, f"run `driftline schemas export`: stale {stale}"
    assert {p.name for p in JSON_DIR.glob("*.json")} == set(json_schemas())
