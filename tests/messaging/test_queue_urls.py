"""Queue URLs: the NATS server lists and ``?replicas=`` they accept, and the ones they refuse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adventure_quest.bootstrap.parts import check_settings
from adventure_quest.config import Settings
from adventure_quest.messaging.nats import NatsQueue
from adventure_quest.messaging.urls import QueueUrl, check_queue_url, open_queue
from adventure_quest.store.errors import StoreUrlError

ACCEPTED = [
    ("memory://", QueueUrl((), "", None)),
    ("nats://127.0.0.1:4222", QueueUrl(("nats://127.0.0.1:4222",), "AQ_EVENTS", None)),
    (
        "nats://h1:4222,h2:4222,h3:4222",
        QueueUrl(("nats://h1:4222", "nats://h2:4222", "nats://h3:4222"), "AQ_EVENTS", None),
    ),
    (
        "nats://h1:4222,nats://h2:4223/AQ_X?replicas=3",
        QueueUrl(("nats://h1:4222", "nats://h2:4223"), "AQ_X", 3),
    ),
    ("nats://u:p@h1:4222,h2:4222/S", QueueUrl(("nats://u:p@h1:4222", "nats://h2:4222"), "S", None)),
    ("nats://h1:4222?replicas=1", QueueUrl(("nats://h1:4222",), "AQ_EVENTS", 1)),
    ("nats://h1:4222/S?replicas=5", QueueUrl(("nats://h1:4222",), "S", 5)),
]

REFUSED = [
    ("nats://h1:4222,,h3:4222", "is not a server"),
    ("nats://h1:4222,", "is not a server"),
    ("nats://", "is not a server"),
    ("nats://h1:4222,h2:x", "malformed port"),
    ("nats://h1:4222,h2:99999", "malformed port"),
    ("nats://h1:4222,redis://h2:6379", "is not a server"),
    ("nats://h1:4222/S,h2:4222", "come once, after the last server"),
    ("nats://h1:4222?replicas=3,h2:4222", "come once, after the last server"),
    ("nats://h1:4222/bad.name", "not a valid stream name"),
    ("nats://h1:4222?replicas=0", "replicas must be 1..5"),
    ("nats://h1:4222?replicas=6", "replicas must be 1..5"),
    ("nats://h1:4222?replicas=three", "replicas must be 1..5"),
    ("nats://h1:4222?replicas=", "replicas must be 1..5"),
    ("nats://h1:4222?replica=3", "the only option is one ?replicas=N"),
    ("nats://h1:4222?replicas=3&replicas=3", "the only option is one ?replicas=N"),
    ("nats://h1:4222#x", "the only option is one ?replicas=N"),
    ("nats://h1:4222?replicas", "cannot parse"),
    ("bogus://h1:4222", "supported: memory://, nats://HOST:PORT[,HOST:PORT...]"),
]


@pytest.mark.parametrize(("url", "named"), ACCEPTED)
def test_an_accepted_url_names_its_servers_stream_and_replicas(url: str, named: QueueUrl) -> None:
    assert check_queue_url(url) == named


@pytest.mark.parametrize(("url", "problem"), REFUSED)
def test_a_malformed_url_is_refused_with_the_stable_code_before_anything_opens(
    url: str, problem: str
) -> None:
    with pytest.raises(StoreUrlError) as raised:
        check_settings(Settings(queue_url=url))
    assert raised.value.code == "store_url_invalid"
    assert problem in str(raised.value)


hosts = st.tuples(
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True),
    st.integers(1, 65_535),
)


@given(
    servers=st.lists(hosts, min_size=1, max_size=5),
    full=st.booleans(),
    replicas=st.none() | st.integers(1, 5),
)
def test_a_server_list_is_read_back_whole_and_in_order_in_either_form(
    servers: list[tuple[str, int]], full: bool, replicas: int | None
) -> None:
    written = [f"{'nats://' if full else ''}{host}:{port}" for host, port in servers]
    written[0] = f"nats://{servers[0][0]}:{servers[0][1]}"
    url = ",".join(written) + "/AQ_P" + (f"?replicas={replicas}" if replicas else "")
    found = check_queue_url(url)
    assert found.servers == tuple(f"nats://{host}:{port}" for host, port in servers)
    assert (found.stream, found.replicas) == ("AQ_P", replicas)


def test_the_queue_an_url_opens_has_every_server_and_the_replicas() -> None:
    queue = open_queue("nats://h1:4222,h2:4223/AQ_X?replicas=3", partitions=2, groups=[])
    assert isinstance(queue, NatsQueue)
    assert queue.servers == ["nats://h1:4222", "nats://h2:4223"]
    assert (queue.stream, queue.replicas) == ("AQ_X", 3)


def test_an_unavailable_queue_names_every_server_without_their_passwords() -> None:
    queue = NatsQueue("nats://u:secret@h1:4222,nats://h2:4222")
    message = str(queue.unavailable("down"))
    assert "secret" not in message
    assert "nats://u:***@h1:4222,nats://h2:4222" in message
