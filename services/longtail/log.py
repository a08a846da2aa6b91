"""Structured logging (structlog): JSON lines in production, readable lines on a terminal."""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure(service: str, level: str | None = None, fmt: str | None = None) -> structlog.stdlib.BoundLogger:
    level = (level or os.environ.get("LOG_LEVEL", "INFO")).upper()
    fmt = fmt or os.environ.get("LOG_FORMAT") or ("console" if sys.stderr.isatty() else "json")
    renderer = structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping().get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries (aiokafka, faust, grpc) log through the standard library: warnings by default,
    # LIBRARY_LOG_LEVEL=INFO to see e.g. faust's rebalances and table recovery.
    logging.basicConfig(stream=sys.stderr, level=os.environ.get("LIBRARY_LOG_LEVEL", "WARNING").upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    return structlog.get_logger()


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name) if name else structlog.get_logger()


if not structlog.is_configured():
    # Libraries log before a service configures: keep stdout clean for program output.
    configure("longtail")
