"""Prometheus metrics of one app instance (its own registry, exposed at /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ServiceMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "zoneout_requests_total", "HTTP requests", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "zoneout_request_seconds",
            "request latency",
            ["endpoint"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.batch_size = Histogram(
            "zoneout_batch_size",
            "requests per model call",
            ["model", "signature"],
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.model_seconds = Histogram(
            "zoneout_model_call_seconds",
            "time in the model call",
            ["model", "signature"],
            registry=self.registry,
        )
        self.tokens_generated = Counter(
            "zoneout_tokens_generated_total", "tokens generated", ["model"], registry=self.registry
        )
        self.errors = Counter("zoneout_errors_total", "errors by kind", ["kind"], registry=self.registry)

    def observe_batch(self, model: str, signature: str, size: int, seconds: float) -> None:
        self.batch_size.labels(model, signature).observe(size)
        self.model_seconds.labels(model, signature).observe(seconds)
