"""The event codec's configuration: which schema each type is at, and which upcasters fit."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from adventure_quest.store.codec import EventCodec, UnknownEventError, Upcaster
from adventure_quest.store.envelope import Metadata, RecordedEvent


class Opened(msgspec.Struct, frozen=True):
    door: str
    loud: bool = False


class Closed(msgspec.Struct, frozen=True):
    door: str


TYPES: dict[str, type[msgspec.Struct]] = {"Opened": Opened, "Closed": Closed}


def louder(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "loud": True}


def stored(event_type: str, schema_version: int, payload: bytes) -> RecordedEvent:
    return RecordedEvent(
        "id", "door-1", "door", 1, 1, event_type, schema_version, payload, Metadata()
    )


def codec(
    versions: dict[str, int], upcasters: dict[tuple[str, int], Upcaster]
) -> EventCodec[msgspec.Struct]:
    return EventCodec(TYPES, versions, upcasters)


def test_a_type_without_a_listed_version_is_at_schema_one() -> None:
    plain = codec({"Opened": 2}, {("Opened", 1): louder})
    assert plain.encode(Closed("front")).schema_version == 1
    assert plain.encode(Opened("front")).schema_version == 2
    assert plain.decode(stored("Closed", 1, b'{"door":"back"}')) == Closed("back")
    with pytest.raises(UnknownEventError, match="Closed v2 at door-1 is newer than this code"):
        plain.decode(stored("Closed", 2, b'{"door":"back"}'))


def test_no_versions_at_all_puts_every_type_at_schema_one() -> None:
    plain = codec({}, {})
    assert [plain.encode(e).schema_version for e in (Opened("a"), Closed("b"))] == [1, 1]


def test_a_valid_configuration_upcasts_each_older_schema() -> None:
    upcasting = codec({"Opened": 3}, {("Opened", 1): louder, ("Opened", 2): dict})
    assert upcasting.decode(stored("Opened", 1, b'{"door":"a"}')) == Opened("a", loud=True)
    assert upcasting.decode(stored("Opened", 2, b'{"door":"a"}')) == Opened("a")


@pytest.mark.parametrize(
    ("versions", "upcaster"),
    [
        ({"Opened": 2}, ("Opened", 2)),  # from the current schema: nothing newer to reach
        ({"Opened": 2}, ("Opened", 5)),  # from a schema newer than the current one
        ({"Opened": 2}, ("Closed", 1)),  # from schema 1 of a type at the default schema, 1
        ({"Opened": 2}, ("Unheard", 1)),  # for a type the codec does not know
    ],
)
def test_an_upcaster_with_no_newer_schema_to_reach_is_refused(
    versions: dict[str, int], upcaster: tuple[str, int]
) -> None:
    name, version = upcaster
    with pytest.raises(ValueError, match=f"upcaster for {name} v{version} has no newer schema"):
        codec(versions, {("Opened", 1): louder, upcaster: louder})
