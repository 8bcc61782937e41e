"""Old payload schemas are upgraded on read; unknown or newer ones fail clearly."""

from __future__ import annotations

import pytest

from adventure_quest.app.aggregates import event_codec, player_type
from adventure_quest.app.repository import Repository
from adventure_quest.domain.events import PlayerCreated
from adventure_quest.store.codec import UnknownEventError
from adventure_quest.store.envelope import NO_STREAM, Metadata, NewEvent, RecordedEvent
from adventure_quest.store.memory import MemorySnapshotStore
from tests.conftest import StoreFactory

V1_PAYLOAD = b'{"player_id":"p1","name":"Old Timer","room":"village_square"}'


def recorded(event_type: str, schema_version: int, payload: bytes) -> RecordedEvent:
    return RecordedEvent(
        "id", "player-p1", "player", 1, 1, event_type, schema_version, payload, Metadata()
    )


def test_a_v1_player_created_is_upcast_to_the_current_shape() -> None:
    event = event_codec().decode(recorded("PlayerCreated", 1, V1_PAYLOAD))
    assert event == PlayerCreated("p1", "Old Timer", "village_square", 100, 100)


async def test_a_stored_v1_event_loads_as_a_full_character(make_store: StoreFactory) -> None:
    store = make_store()
    await store.append("player-p1", NO_STREAM, [NewEvent("PlayerCreated", V1_PAYLOAD, 1)])
    repository = Repository(store, MemorySnapshotStore(), event_codec())
    state = (await repository.load(player_type(), "player-p1")).state
    assert (state.name, state.health, state.max_health) == ("Old Timer", 100, 100)


def test_current_events_are_written_under_their_current_schema() -> None:
    new = event_codec().encode(PlayerCreated("p1", "New", "village_square", 100, 100))
    assert (new.event_type, new.schema_version) == ("PlayerCreated", 2)


@pytest.mark.parametrize(
    ("event_type", "schema_version"), [("NoSuchEvent", 1), ("PlayerCreated", 3)]
)
def test_unknown_types_and_newer_schemas_fail_clearly(event_type: str, schema_version: int) -> None:
    with pytest.raises(UnknownEventError, match=event_type):
        event_codec().decode(recorded(event_type, schema_version, V1_PAYLOAD))


def test_decoding_many_at_once_upcasts_like_one_at_a_time_and_fails_alike() -> None:
    codec = event_codec()
    current = codec.encode(PlayerCreated("p2", "New", "village_square", 90, 80))
    records = [
        recorded("PlayerCreated", 1, V1_PAYLOAD),
        recorded(current.event_type, current.schema_version, current.payload),
    ]
    assert codec.decode_all(records) == [codec.decode(r) for r in records]
    assert codec.decode_all(records)[1] == PlayerCreated("p2", "New", "village_square", 90, 80)
    with pytest.raises(UnknownEventError, match="NoSuchEvent"):
        codec.decode_all([*records, recorded("NoSuchEvent", 1, b"{}")])
