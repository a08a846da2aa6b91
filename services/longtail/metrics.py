"""Prometheus metrics shared by every service. Names: longtail_<thing>_<unit>, label `service`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

KAFKA_PRODUCED = Counter("longtail_kafka_produced_messages_total", "Messages acked by Kafka", ["service", "topic"])
KAFKA_DELIVERY_ERRORS = Counter(
    "longtail_kafka_delivery_errors_total", "Messages Kafka failed to deliver", ["service", "topic"]
)
KAFKA_CONSUMED = Counter("longtail_kafka_consumed_messages_total", "Messages consumed", ["service", "topic"])
KAFKA_DEAD_LETTERED = Counter(
    "longtail_kafka_dead_lettered_messages_total", "Records sent to the dead-letter topic", ["service", "topic"]
)
KAFKA_CONSUMER_LAG = Gauge(
    "longtail_kafka_consumer_lag_messages", "High watermark minus position", ["service", "topic", "partition"]
)
KAFKA_LAST_PROGRESS = Gauge(
    "longtail_kafka_consumer_last_progress_timestamp_seconds",
    "Unix time of the consumer's last poll; liveness reads it",
    ["service"],
)
GRPC_REQUESTS = Counter("longtail_grpc_requests_total", "gRPC calls handled", ["service", "method", "code"])
GRPC_LATENCY = Histogram(
    "longtail_grpc_request_duration_seconds",
    "gRPC call duration",
    ["service", "method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OBJECTS_PUT = Counter("longtail_objects_put_total", "Object store puts by outcome", ["service", "outcome"])
OBJECT_BYTES = Counter("longtail_object_bytes_written_total", "Bytes written to the object store", ["service"])


def serve_metrics(port: int, addr: str = "127.0.0.1") -> None:
    """Expose /metrics over HTTP (port 0 disables it)."""
    if port:
        start_http_server(port, addr=addr)
