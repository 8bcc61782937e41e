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


def test_each_upcaster_runs_once_in_order_from_the_stored_schema_to_the_current() -> None:
    steps: list[int] = []

    def step(version: int) -> Upcaster:
        def upcast(payload: dict[str, Any]) -> dict[str, Any]:
            steps.append(version)
            return {**payload, "door": f"{payload['door']}>{version + 1}"}

        return upcast

    upcasting = codec({"Opened": 4}, {("Opened", v): step(v) for v in (1, 2, 3)})
    assert upcasting.decode(stored("Opened", 1, b'{"door":"a"}')) == Opened("a>2>3>4")
    assert steps == [1, 2, 3]
    assert upcasting.decode_all([stored("Opened", 2, b'{"door":"b"}')]) == [Opened("b>3>4")]


def test_a_missing_step_on_the_way_to_the_current_schema_is_named() -> None:
    gap = codec({"Opened": 3}, {("Opened", 2): louder})
    assert gap.decode(stored("Opened", 2, b'{"door":"a"}')) == Opened("a", loud=True)
    with pytest.raises(UnknownEventError, match="no upcaster for Opened v1"):
        gap.decode(stored("Opened", 1, b'{"door":"a"}'))


def test_an_encoded_event_carries_its_metadata_and_its_payload() -> None:
    metadata = Metadata(correlation_id="c-1", causation_id="c-0", actor="ann")
    encoded = codec({}, {}).encode(Opened("front", loud=True), metadata)
    assert encoded.metadata == metadata
    assert (encoded.event_type, encoded.schema_version) == ("Opened", 1)
    assert msgspec.json.decode(encoded.payload) == {"door": "front", "loud": True}
    assert codec({}, {}).encode(Closed("back")).metadata == Metadata()


def test_an_unknown_event_type_is_named_with_its_stream() -> None:
    with pytest.raises(UnknownEventError, match="unknown event type 'Slammed' at door-1"):
        codec({}, {}).decode(stored("Slammed", 1, b"{}"))
    with pytest.raises(UnknownEventError, match="unknown event type 'Slammed' at door-1"):
        codec({}, {}).decode_all([stored("Slammed", 1, b"{}")])


def test_a_stored_event_prints_as_its_upcast_payload() -> None:
    upcasting = codec({"Opened": 2}, {("Opened", 1): louder})
    assert upcasting.to_builtins(stored("Opened", 1, b'{"door":"a"}')) == {
        "door": "a",
        "loud": True,
    }
