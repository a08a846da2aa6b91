"""Prometheus metrics shared by every service. Names: longtail_<thing>_<unit>, label `service`."""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram, start_http_server

KAFKA_PRODUCED = Counter("longtail_kafka_produced_messages_total", "Messages acked by Kafka", ["service", "topic"])
KAFKA_DELIVERY_ERRORS = Counter("longtail_kafka_delivery_errors_total", "Messages Kafka failed to deliver", ["service", "topic"])
# Consumer metrics carry the service and the consumer group (a service may run several groups,
# e.g. the trigger evaluator's evaluate and decide stages).
KAFKA_CONSUMED = Counter("longtail_kafka_consumed_messages_total", "Messages consumed", ["service", "group", "topic"])
KAFKA_DEAD_LETTERED = Counter("longtail_kafka_dead_lettered_messages_total", "Records sent to the dead-letter topic", ["service", "group", "topic"])
KAFKA_CONSUMER_LAG = Gauge("longtail_kafka_consumer_lag_messages", "High watermark minus position", ["service", "group", "topic", "partition"])
KAFKA_LAST_PROGRESS = Gauge(
    "longtail_kafka_consumer_last_progress_timestamp_seconds",
    "Unix time of the consumer's last poll; liveness reads it",
    ["service", "group"],
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
KAFKA_OUTAGE_RETRIES = Counter("longtail_kafka_outage_retries_total", "Records retried because processing failed for a reason other than their content (a dependency away)", ["service", "group"])


def serve_metrics(port: int, addr: str = "127.0.0.1") -> None:
    """Expose /metrics over HTTP (port 0 disables it)."""
    if port:
        start_http_server(port, addr=addr)


class ConsumerMetrics:
    """The metrics of one consumer group in one service: progress, consumed, dead-lettered, lag.
    Every series exists from the start (at 0), so dashboards and alerts see a quiet consumer too."""

    def __init__(self, service: str, group: str, topics: list[str], lag_interval: float = 10.0) -> None:
        self.service, self.group, self.lag_interval = service, group, lag_interval
        self._consumed = {t: KAFKA_CONSUMED.labels(service, group, t) for t in topics}
        self._dead = {t: KAFKA_DEAD_LETTERED.labels(service, group, t) for t in topics}
        self._progress = KAFKA_LAST_PROGRESS.labels(service, group)
        self._outage = KAFKA_OUTAGE_RETRIES.labels(service, group)
        self._next_lag = 0.0

    def polled(self, consumer) -> None:
        """After each poll: progress now, and the lag every lag_interval seconds."""
        self._progress.set(time.time())
        if time.monotonic() >= self._next_lag:
            self._next_lag = time.monotonic() + self.lag_interval
            self.update_lag(consumer)

    def consumed(self, topic: str, n: int = 1) -> None:
        (self._consumed.get(topic) or KAFKA_CONSUMED.labels(self.service, self.group, topic)).inc(n)

    def dead_lettered(self, topic: str) -> None:
        (self._dead.get(topic) or KAFKA_DEAD_LETTERED.labels(self.service, self.group, topic)).inc()

    def outage_retried(self) -> None:
        self._outage.inc()

    def update_lag(self, consumer) -> None:
        """Lag per assigned partition from the watermarks librdkafka caches from fetch responses
        (no broker round trip)."""
        from confluent_kafka import KafkaException, TopicPartition

        try:
            assigned = consumer.assignment()
            if not assigned:
                return
            for tp in consumer.position(assigned):
                _low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), cached=True)
                lag = high - tp.offset if tp.offset >= 0 else high
                KAFKA_CONSUMER_LAG.labels(self.service, self.group, tp.topic, str(tp.partition)).set(max(lag, 0))
        except KafkaException:
            pass  # the next interval tries again
