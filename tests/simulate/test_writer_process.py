from __future__ import annotations

import pytest

from distillguard.ingest.writers import write_events
from distillguard.simulate.writer_process import write_events_in_child
from tests.ingest.factories import make_event


def test_child_writer_gives_the_same_bytes_as_writing_in_process(tmp_path):
    events = [make_event(i) for i in range(5_000)]  # more than one batch
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    # same file name: gzip headers record it
    here, there = tmp_path / "a" / "t.litellm.jsonl.gz", tmp_path / "b" / "t.litellm.jsonl.gz"
    assert write_events(iter(events), here) == write_events_in_child(iter(events), there) == 5_000
    assert here.read_bytes() == there.read_bytes()


def test_a_failing_writer_is_reported_not_hung(tmp_path):
    with pytest.raises(RuntimeError, match="failed|stopped"):
        write_events_in_child(iter([make_event(0)]), tmp_path / "x.jsonl", fmt="no-such-format")
