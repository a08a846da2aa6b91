# syntax=docker/dockerfile:1
# One image for every longtail service. Build it from the repository root (the context needs
# requirements.lock, pyproject.toml, README.md, services/, tasks.yaml and suites/):
#
#   docker build -t longtail:dev .
#   docker run --rm longtail:dev gateway        # = longtail serve gateway
#
# The Helm charts run it with args [<service>] (ENTRYPOINT is `longtail serve`). The pods run it
# as uid 10001 with a read-only root filesystem; /tmp is an emptyDir.
#
# Build arguments:
#   SOURCE_OWNER  owner of /app/services (default root: the service cannot modify its own code).
#                 Tilt sets it to 10001 so live_update can sync files into a running container.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# The exact pinned set that resolves together (grpcio/protobuf/tritonclient; see docs/architecture.md).
# Its own layer: only a change of requirements.lock reinstalls the ~3 GB of wheels.
COPY requirements.lock /tmp/requirements.lock
RUN pip install --upgrade pip \
 && pip install -r /tmp/requirements.lock

FROM deps AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services/ services/
# The project itself, without dependencies (all pinned above): gives the `longtail` command.
RUN pip install --no-deps . \
 && python -m compileall -q /opt/venv/lib/python3.11/site-packages

FROM ${PYTHON_IMAGE}
ARG SOURCE_OWNER=0
RUN groupadd --system --gid 10001 longtail \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin longtail
COPY --from=build /opt/venv /opt/venv
# The sources again under /app/services, first on sys.path (PYTHONPATH), so that the code that
# runs is this directory: Tilt syncs changed files here and restarts the process.
COPY --chown=${SOURCE_OWNER}:${SOURCE_OWNER} services/ /app/services/
RUN python -m compileall -q /app/services
# Data files the services find relative to the working directory /app (= the repository root's
# layout): the trainer's task declarations (./tasks.yaml when TRAINER_TASKS_FILE is unset; the
# trainer chart sets it to a ConfigMap mount, which then takes precedence) and the label store's
# YAML unit-test suites (`longtail suites upsert suites/*.yaml`, the demo's suites/). Read-only.
COPY tasks.yaml /app/tasks.yaml
COPY suites/ /app/suites/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app/services \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GRPC_HOST=0.0.0.0
WORKDIR /app
USER 10001:10001
EXPOSE 50051 9464
ENTRYPOINT ["longtail", "serve"]
CMD ["--help"]
