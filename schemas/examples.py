"""Labelled examples: what producers send and the validator re-publishes."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import AwareDatetime, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from schemas.base import Event

# A feature value: a number, a string (category), a bool, or missing (null).
FeatureValue = StrictBool | StrictInt | StrictFloat | StrictStr | None
# A label: a class (string, int or bool) or a number (regression).
Label = StrictBool | StrictInt | StrictFloat | StrictStr


class LabelledExample(Event):
    """Sent by producers to ``examples.raw``; re-published by the validator to ``examples.valid``.

    On the valid topic ``spec_version`` names the stream config version that judged the
    example and ``event_id`` is derived from ``raw_event_id``.

    >>> from datetime import datetime, timezone
    >>> ex = LabelledExample(stream="sea", example_id="42", features={"x1": 0.5, "color": "red"},
    ...                      label=True, event_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    >>> ex.spec_version is None
    True
    """

    event_type: Literal["labelled_example"] = "labelled_example"
    stream: StrictStr = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._-]+$")
    example_id: StrictStr = Field(min_length=1, max_length=200)
    features: dict[StrictStr, FeatureValue]
    label: Label
    event_time: AwareDatetime
    spec_version: int | None = Field(
        default=None, ge=1, description="set by the validator: the spec version that judged it"
    )
    raw_event_id: uuid.UUID | None = Field(
        default=None, description="set by the validator: the event_id of the raw message"
    )
