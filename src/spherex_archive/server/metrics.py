"""Prometheus metrics: requests, latency and errors by endpoint template, and the catalogue's
planes per collection.

Each app has its own registry (tests and benchmarks build many apps in one process). With
several uvicorn workers each process counts its own requests; when ``PROMETHEUS_MULTIPROC_DIR``
is set (``spherex-archive serve --workers N`` sets it), prometheus_client keeps the counts in
files there and a scrape of any worker sums them all.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

MEDIA_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "<unmatched>"
"""The endpoint label of requests no route matched: raw paths (scanners, typos) would make
one time series each."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
"""From a cached listing (ms) to a large TAP answer (minutes)."""

COUNTS_TTL = 60.0
"""Seconds a planes-per-collection count is reused: counting is a scan of the ObsCore view,
too dear for every scrape at ten million planes."""


class Metrics:
    """The archive's metrics and their exposition."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "spherex_http_requests",
            "HTTP requests answered, by method, endpoint template and status",
            ["method", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "spherex_http_request_duration_seconds",
            "Time from request to the end of the response body, by endpoint template",
            ["method", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "spherex_http_exceptions",
            "Requests that raised an unhandled exception, by endpoint template and type",
            ["endpoint", "exception"],
            registry=self.registry,
        )
        self.queries = Counter(
            "spherex_queries",
            "Catalogue queries answered (TAP), by service and outcome",
            ["service", "outcome"],
            registry=self.registry,
        )
        self.query_rows = Counter(
            "spherex_query_rows",
            "Rows returned by catalogue queries, by service",
            ["service"],
            registry=self.registry,
        )
        self.query_seconds = Histogram(
            "spherex_query_duration_seconds",
            "Time from a query's start to its last row, by service",
            ["service"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.catalogue = CatalogueCollector(counts)
        self.registry.register(self.catalogue)

    def observe(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(method, endpoint, str(status)).inc()
        self.latency.labels(method, endpoint).observe(seconds)

    def query(self, service: str, rows: int | None, seconds: float) -> None:
        """One query: ``rows`` None when it failed."""
        self.queries.labels(service, "error" if rows is None else "ok").inc()
        if rows is not None:
            self.query_rows.labels(service).inc(rows)
            self.query_seconds.labels(service).observe(seconds)

    def exception(self, endpoint: str, error: BaseException) -> None:
        self.errors.labels(endpoint, type(error).__name__).inc()

    def exposition(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            registry.register(self.catalogue)
            return generate_latest(registry)
        return generate_latest(self.registry)


class CatalogueCollector(Collector):
    """``spherex_catalogue_planes{collection}`` and ``spherex_catalogue_up``, read at scrape
    time (cached for COUNTS_TTL) so every worker reports the catalogue as it is."""

    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, int] | None] = (-COUNTS_TTL, None)

    def _read(self) -> dict[str, int] | None:
        with self._lock:
            when, counts = self._cached
            if time.monotonic() - when >= COUNTS_TTL:
                try:
                    counts = self._counts()
                except Exception:  # reported as spherex_catalogue_up 0, and logged
                    log.exception("counting planes for /metrics failed")
                    counts = None
                self._cached = (time.monotonic(), counts)
            return counts

    def collect(self) -> Iterator[Metric]:
        counts = self._read()
        up = GaugeMetricFamily(
            "spherex_catalogue_up", "1 if the catalogue answered the last count, else 0"
        )
        up.add_metric([], 0 if counts is None else 1)
        yield up
        planes = GaugeMetricFamily(
            "spherex_catalogue_planes",
            "Released planes (detector images and calibration files) per collection",
            labels=["collection"],
        )
        for collection, count in (counts or {}).items():
            planes.add_metric([collection], count)
        yield planes
