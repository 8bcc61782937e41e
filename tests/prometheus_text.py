"""Reading Prometheus text in tests: with prometheus-client's parser, not by splitting lines."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the one sample called ``name`` with exactly ``labels``."""
    found = [
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and s.labels == labels
    ]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def families(text: str) -> set[str]:
    """The names of the metric families in ``text`` (a counter's without ``_total``)."""
    return {family.name for family in text_string_to_metric_families(text)}
