"""Prometheus metrics of the gateway (``GET /metrics``), in a registry of its own per app.

Series:

* ``distillguard_requests_total{endpoint, status}``: requests answered, by HTTP status
* ``distillguard_decisions_total{action, shadow}``: decision actions taken (or that would be, in shadow)
* ``distillguard_upstream_seconds{endpoint}``: upstream time (headers to last byte)
* ``distillguard_overhead_seconds{endpoint}``: time the gateway added (total minus upstream)
* ``distillguard_unknown_key_total``: requests refused for a missing or unknown API key

and, read from the recorder's :meth:`~distillguard.gateway.types.Recorder.status` at scrape time:

* ``distillguard_wal_pending_records``: records in the write-ahead file not yet in the store
* ``distillguard_wal_bytes``: bytes of write-ahead segment files on disk (grows while the store is unusable)
* ``distillguard_recorder_lag_seconds``: age of the oldest record not yet in the store
* ``distillguard_recorder_up``: 1 while the recording worker runs; ``distillguard_recorder_failed``:
  1 when it cannot run and is not restarted (``/healthz`` and ``GET /admin/recorder`` say why)
* ``distillguard_recorder_committed_records_total``, ``distillguard_recorder_batches_total``,
  ``distillguard_recorder_quarantined_records_total``, ``distillguard_recorder_store_errors_total``,
  ``distillguard_recorder_worker_restarts_total``
* ``distillguard_recorder_lost_records_total``: exchanges served but not recorded (the WAL write failed);
  ``distillguard_recorder_wal_write_failing``: 1 while the latest WAL append failed

Label children are cached so the request path does a dict lookup, not ``labels()``.

Example:
    >>> m = GatewayMetrics()
    >>> m.request("/v1/chat/completions", 200)
    >>> b'distillguard_requests_total{endpoint="/v1/chat/completions",status="200"} 1.0' in m.render()[1]
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Sub-millisecond buckets: the overhead target is p50 < 1 ms, p99 < 5 ms.
_OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 1.0)
_UPSTREAM_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)


class GatewayMetrics:
    """The gateway's series and cheap recording methods for the request path."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._requests = Counter("distillguard_requests", "Requests answered", ["endpoint", "status"], registry=r)
        self._decisions = Counter("distillguard_decisions", "Decision actions", ["action", "shadow"], registry=r)
        self._upstream = Histogram("distillguard_upstream_seconds", "Upstream time", ["endpoint"],
                                   buckets=_UPSTREAM_BUCKETS, registry=r)  # fmt: skip
        self._overhead = Histogram("distillguard_overhead_seconds", "Time added by the gateway", ["endpoint"],
                                   buckets=_OVERHEAD_BUCKETS, registry=r)  # fmt: skip
        self.unknown_keys = Counter("distillguard_unknown_key", "Requests with a missing or unknown API key", registry=r)
        self._children: dict[tuple, object] = {}
        self._decision_children: dict[tuple, tuple] = {}

    def _child(self, metric, *labels: str):
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def request(self, endpoint: str, status: int) -> None:
        self._child(self._requests, endpoint, str(status)).inc()

    def decision(self, actions, shadow: bool) -> None:
        key = (tuple(actions), shadow)
        children = self._decision_children.get(key)
        if children is None:  # one tuple of labelled children per (actions, shadow), built once
            flag = "true" if shadow else "false"
            children = self._decision_children[key] = tuple(self._child(self._decisions, a.value, flag) for a in actions)
        for child in children:
            child.inc()

    def timing(self, endpoint: str, upstream_s: float | None, total_s: float) -> None:
        if upstream_s is not None:
            self._child(self._upstream, endpoint).observe(upstream_s)
            self._child(self._overhead, endpoint).observe(max(0.0, total_s - upstream_s))

    def watch_recorder(self, status: Callable[[], dict[str, Any]]) -> None:
        """Read the recorder's ``status()`` at scrape time (nothing on the request path)."""
        self.registry.register(RecorderCollector(status))

    def render(self) -> tuple[bytes, bytes]:
        """(content type, body) of a scrape."""
        return CONTENT_TYPE_LATEST.encode(), generate_latest(self.registry)


class RecorderCollector(Collector):
    """The recorder's series, from one ``status()`` call per scrape (only the keys it has).

    Example:
        >>> [m.name for m in RecorderCollector(lambda: {"state": "failed", "quarantined_records": 2}).collect()]
        ['distillguard_recorder_up', 'distillguard_recorder_failed', 'distillguard_recorder_quarantined_records']
    """

    _GAUGES = (("pending_records", "distillguard_wal_pending_records", "WAL records not yet in the store"),
               ("lag_s", "distillguard_recorder_lag_seconds", "Age of the oldest unstored record"),
               ("wal_bytes", "distillguard_wal_bytes", "Bytes of write-ahead segment files on disk"))  # fmt: skip
    _COUNTERS = (
        ("committed_records", "distillguard_recorder_committed_records", "Records the recording worker is done with (stored or quarantined)"),
        ("batches", "distillguard_recorder_batches", "Batches the recording worker stored"),
        ("quarantined_records", "distillguard_recorder_quarantined_records", "Records set aside because they cannot be stored"),
        ("store_errors", "distillguard_recorder_store_errors", "Batches that failed for a reason of the store's (retried)"),
        ("worker_restarts", "distillguard_recorder_worker_restarts", "Recording worker restarts after a death"),
        ("lost_records", "distillguard_recorder_lost_records", "Exchanges served but not recorded: the WAL write failed"),
        ("store_reopens", "distillguard_recorder_store_reopens", "Store connections reopened after a fatal DuckDB error (in-process recorder)"),
    )  # fmt: skip

    def __init__(self, status: Callable[[], dict[str, Any]]):
        self._status = status

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        if not status:
            return
        state = status.get("state")
        yield GaugeMetricFamily("distillguard_recorder_up", "1 while recording runs", value=float(state == "running"))
        yield GaugeMetricFamily("distillguard_recorder_failed", "1 when recording cannot run and is not restarted",
                                value=float(state == "failed"))  # fmt: skip
        if "wal_write_error" in status:
            yield GaugeMetricFamily("distillguard_recorder_wal_write_failing", "1 while the latest write-ahead append failed",
                                    value=float(status["wal_write_error"] is not None))  # fmt: skip
        for key, name, doc in self._GAUGES:
            if key in status:
                yield GaugeMetricFamily(name, doc, value=float(status[key]))
        for key, name, doc in self._COUNTERS:
            if key in status:
                yield CounterMetricFamily(name, doc, value=float(status[key]))
