"""The figures an operator scrapes from `GET /metrics`, kept by `prometheus_client`.

`Metrics` is the one place the server records a figure. Each instance has its own
registry, so several servers can run in one process.

Several worker processes share one scrape when `PROMETHEUS_MULTIPROC_DIR` names a
directory in their environment before they start (prometheus_client's multiprocess
mode, chosen when it is imported): every process writes its figures to files there and
`/metrics`, in whichever worker answers it, reads them all. The supervisor empties the
directory before it starts the workers (`prepare_multiprocess_dir`) and calls
`mark_process_dead` for a worker that died; a worker calls it itself when it stops.

The figures of every request (its count, its handler's time) are kept in plain Python
and written into prometheus_client in one batch (`flush`): at every scrape and every
`value`, when a request comes a second or more after the last batch, and when the
server stops. In multiprocess mode they are written at once, as every other figure: a
scrape answered by another worker reads them from this one's files and must find every
request answered before it (a batch written just after the answer, once the event loop
has run what was ready, was sometimes too late). They are kept by the event loop's
thread only.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left
from pathlib import Path
from time import monotonic

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

__all__ = [
    "CONTENT_TYPE_LATEST",
    "MULTIPROCESS",
    "REQUEST_BUCKETS",
    "Metrics",
    "mark_process_dead",
    "prepare_multiprocess_dir",
]

#: True when the figures of every process sharing PROMETHEUS_MULTIPROC_DIR are scraped
#: together (read once, like prometheus_client itself does when it is imported).
MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ

#: Upper bounds (seconds) of lovewire_request_seconds: 0.1 ms to 5 s.
REQUEST_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

#: Seconds at most between two batches of request figures (`Metrics.flush`).
FLUSH_EVERY = 1.0

# A `_created` series beside each counter doubles the output and is not written in
# multiprocess mode: one shape of output in both modes.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The server's counters, gauges and request latencies, and their rendering."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry()
        self._requests = Counter(
            "lovewire_requests",
            "Requests routed to a handler, by type.",
            ["type"],
            registry=registry,
        )
        self._seconds = Histogram(
            "lovewire_request_seconds",
            "Seconds a handler took to answer a request, by type.",
            ["type"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self._by_type: dict[str, _TypeFigures] = {}
        #: The types with figures not yet written, and when the last batch was.
        self._unflushed: list[_TypeFigures] = []
        self._flushed_at = monotonic()
        self._errors = Counter(
            "lovewire_errors",
            "Error frames sent, by error_no.",
            ["error_no"],
            registry=registry,
        )
        self._pushes_sent = Counter(
            "lovewire_pushes_sent", "Pushes written to a socket.", registry=registry
        )
        self._sockets_opened = Counter(
            "lovewire_sockets_opened", "WebSockets accepted.", registry=registry
        )
        self._sockets_closed_slow = Counter(
            "lovewire_sockets_closed_slow",
            "WebSockets closed (1013) because their client did not read.",
            registry=registry,
        )
        self._sockets_open = Gauge(
            "lovewire_sockets_open",
            "WebSockets open now.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self._commit_seconds = Histogram(
            "lovewire_store_commit_seconds",
            "Seconds a durable commit took: on SQLite a group of write units' COMMIT (its"
            " fsync, and a WAL checkpoint when one is due), on PostgreSQL COMMIT's round trip.",
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self._sms_sent = Counter("lovewire_sms_sent", "SMS codes sent.", registry=registry)
        self._sms_failed = Counter(
            "lovewire_sms_failed", "SMS codes the gateway failed to send.", registry=registry
        )
        if MULTIPROCESS:
            # Every worker's figures, read from the shared directory at each scrape; the
            # process and platform figures are those of the worker that answers.
            self._scraped = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._scraped)  # type: ignore[no-untyped-call]
        else:
            self._scraped = registry
        ProcessCollector(registry=self._scraped)
        PlatformCollector(registry=self._scraped)

    def request(self, type_: str) -> None:
        """Count a request routed to its handler."""
        figures = self._by_type.get(type_)
        if figures is None:
            figures = self._by_type[type_] = _TypeFigures(
                self._requests.labels(type_), self._seconds.labels(type_)
            )
        if MULTIPROCESS:
            figures.counter.inc()
            return
        figures.count += 1
        if not figures.unflushed:
            figures.unflushed = True
            self._unflushed.append(figures)
        if monotonic() - self._flushed_at >= FLUSH_EVERY:
            self.flush()

    def handled(self, type_: str, seconds: float) -> None:
        """A handler answered a request of `type_` (error or not) in `seconds`.

        Always after `request(type_)`: the type's figures exist.
        """
        figures = self._by_type[type_]
        if MULTIPROCESS:
            figures.histogram.observe(seconds)
            return
        figures.handled += 1
        figures.sum += seconds
        # The first bucket whose upper bound is >= seconds, the one Histogram.observe adds to.
        figures.buckets[bisect_left(REQUEST_BUCKETS, seconds)] += 1
        if not figures.unflushed:
            figures.unflushed = True
            self._unflushed.append(figures)

    def flush(self) -> None:
        """Write the request figures recorded since the last batch into prometheus_client."""
        self._flushed_at = monotonic()
        unflushed, self._unflushed = self._unflushed, []
        for figures in unflushed:
            figures.flush()

    def error(self, error_no: int) -> None:
        """Count an error frame sent."""
        self._errors.labels(str(error_no)).inc()

    def committed(self, seconds: float) -> None:
        """A durable commit took `seconds` (`Store.on_commit`): the disk's share of a write."""
        self._commit_seconds.observe(seconds)

    def push_sent(self) -> None:
        self._pushes_sent.inc()

    def socket_opened(self) -> None:
        self._sockets_opened.inc()
        self._sockets_open.inc()

    def socket_closed(self) -> None:
        self._sockets_open.dec()

    def socket_closed_slow(self) -> None:
        self._sockets_closed_slow.inc()

    def sms_sent(self) -> None:
        self._sms_sent.inc()

    def sms_failed(self) -> None:
        self._sms_failed.inc()

    def value(self, name: str, **labels: str) -> float:
        """A sample's value recorded in this process (0 if none yet), for tests and tools."""
        self.flush()
        return self.registry.get_sample_value(name, labels) or 0.0

    def render(self) -> bytes:
        """The scrape: Prometheus text (CONTENT_TYPE_LATEST), every worker's in multiprocess."""
        self.flush()
        return generate_latest(self._scraped)


class _TypeFigures:
    """One request type's figures since the last batch, and where a batch writes them.

    A batch goes into the histogram child without calling `observe` once per request:
    it adds to prometheus_client's private `_sum` and `_buckets` (one value per bucket,
    not cumulative, the last one +Inf; `_child_samples` adds them up), the values
    `observe` itself adds to. `_check_layout` refuses a prometheus_client that keeps
    them otherwise.
    """

    __slots__ = ("buckets", "count", "counter", "handled", "histogram", "sum", "unflushed")

    def __init__(self, counter: Counter, histogram: Histogram) -> None:
        _check_layout(histogram)
        self.counter = counter
        self.histogram = histogram
        self.count = 0
        #: Requests answered, the sum of their times, and how many fell in each bucket.
        self.handled = 0
        self.sum = 0.0
        #: Requests per bucket of REQUEST_BUCKETS, then one for +Inf; not cumulative.
        self.buckets = [0] * (len(REQUEST_BUCKETS) + 1)
        #: True while it is in `Metrics._unflushed`.
        self.unflushed = False

    def flush(self) -> None:
        self.unflushed = False
        if self.count:
            count, self.count = self.count, 0
            self.counter.inc(count)
        if self.handled:
            total, self.sum, self.handled = self.sum, 0.0, 0
            buckets = self.buckets
            histogram = self.histogram
            histogram._sum.inc(total)
            values = histogram._buckets
            for i, n in enumerate(buckets):
                if n:
                    buckets[i] = 0
                    values[i].inc(n)


def _check_layout(histogram: Histogram) -> None:
    """Fail at a type's first request, not with wrong figures, if prometheus_client keeps
    a histogram otherwise."""
    bounds = getattr(histogram, "_upper_bounds", None)
    values = getattr(histogram, "_buckets", None)
    if (
        bounds != [*REQUEST_BUCKETS, math.inf]
        or not isinstance(values, list)
        or len(values) != len(bounds)
        or not all(hasattr(v, "inc") for v in [*values, getattr(histogram, "_sum", None)])
    ):
        raise RuntimeError("prometheus_client's Histogram keeps its buckets in an unknown way")


def prepare_multiprocess_dir(path: str | os.PathLike[str]) -> Path:
    """Create `path` or empty it of the figures of an earlier run; before workers start.

    Only the figure files (`*.db`) are removed: the directory should hold nothing else.
    """
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for file in directory.glob("*.db"):
        file.unlink(missing_ok=True)
    return directory


def mark_process_dead(pid: int | None = None, path: str | os.PathLike[str] | None = None) -> None:
    """Drop the live gauges (sockets open) of a worker that stopped; its counters stay.

    A worker calls it as it exits (`pid` defaults to its own); the supervisor calls it
    for a worker that died without. Nothing to do outside multiprocess mode.
    """
    directory = path if path is not None else os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory is None:
        return
    pid = os.getpid() if pid is None else pid
    multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
