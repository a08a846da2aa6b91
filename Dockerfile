# syntax=docker/dockerfile:1
# One image per longtail service, each with only its own dependencies (requirements/<service>.lock:
# pyproject.toml's `dependencies` plus the service's group). Build from the repository root (the
# context needs requirements/, requirements.lock, pyproject.toml, README.md, services/, tasks.yaml
# and suites/), one target per service:
#
#   docker build --target gateway -t longtail-gateway .
#   docker run --rm longtail-gateway              # = longtail serve gateway
#
# Targets (= services of longtail.registry): gateway, trigger-evaluator, map-vision, label-store,
# inference, trainer. Only inference and the trainer carry torch. `docker build .` without a target
# still builds the former all-in-one image (requirements.lock, every service, torch included).
#
# The Helm charts run an image with args [<service>] (ENTRYPOINT is `longtail serve`). The pods run
# it as uid 10001 with a read-only root filesystem; /tmp is an emptyDir. Needs BuildKit (the default
# builder since Docker 23): a target builds only the stages it uses.
#
# Build arguments:
#   SOURCE_OWNER  owner of /app/services (default root: the service cannot modify its own code).
#                 Tilt sets it to 10001 so live_update can sync files into a running container.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip
ENV PATH=/opt/venv/bin:$PATH

# --- one virtualenv per dependency set -----------------------------------------------------------
# Exactly the lock's pins (--no-deps: nothing else comes in; `pip check` fails the build if the lock
# misses a dependency). Each its own layer: only a change of that lock reinstalls it. pip compiles
# what it installs; no compileall over site-packages, which fails on torch's Python 3.12-only test
# helpers (torch/testing/_internal/py312_intrinsics.py) and would fail the build.
FROM venv AS deps-gateway
COPY requirements/gateway.lock /tmp/requirements.lock
RUN pip install --no-deps -r /tmp/requirements.lock && pip check

FROM venv AS deps-trigger-evaluator
COPY requirements/trigger-evaluator.lock /tmp/requirements.lock
RUN pip install --no-deps -r /tmp/requirements.lock && pip check

FROM venv AS deps-map-vision
COPY requirements/map-vision.lock /tmp/requirements.lock
RUN pip install --no-deps -r /tmp/requirements.lock && pip check

FROM venv AS deps-label-store
COPY requirements/label-store.lock /tmp/requirements.lock
RUN pip install --no-deps -r /tmp/requirements.lock && pip check

FROM venv AS deps-inference
COPY requirements/inference.lock /tmp/requirements.lock
RUN pip install --no-deps -r /tmp/requirements.lock && pip check

FROM venv AS deps-trainer
COPY requirements/trainer.lock /tmp/requirements.lock
RUN pip install --no-deps -r /tmp/requirements.lock && pip check

# Every dependency of every service and the developer tools (the former single image).
FROM venv AS deps-all
COPY requirements.lock /tmp/requirements.lock
RUN pip install --no-deps -r /tmp/requirements.lock && pip check

# --- the project, the same for every image -------------------------------------------------------
# Installed under its own prefix and laid over a service's virtualenv in the final stage, so that a
# change of the sources never copies the dependencies again. Gives the `longtail` command.
FROM venv AS project
WORKDIR /src
COPY pyproject.toml README.md ./
COPY services/ services/
RUN pip install --no-deps --prefix /opt/project .
# The sources again, compiled, for /app/services (first on sys.path: the code that runs), and the
# data files the services find relative to the working directory /app (= the repository root's
# layout): the trainer's task declarations (./tasks.yaml when TRAINER_TASKS_FILE is unset; the
# trainer chart sets it to a ConfigMap mount, which then takes precedence) and the label store's
# YAML unit-test suites (`longtail suites upsert suites/*.yaml`, the demo's suites/). Read-only.
COPY services/ /opt/services/
RUN python -m compileall -q /opt/services
COPY tasks.yaml /opt/data/tasks.yaml
COPY suites/ /opt/data/suites/

# --- what every service image has ----------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 longtail \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin longtail
# /app/services first on sys.path (PYTHONPATH), so that the code that runs is that directory:
# Tilt syncs changed files there and restarts the process.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app/services \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GRPC_HOST=0.0.0.0
WORKDIR /app
USER 10001:10001
EXPOSE 50051 9464
ENTRYPOINT ["longtail", "serve"]

# --- one target per service ----------------------------------------------------------------------
# Largest and least often changed first: the service's virtualenv, then the project, the data files
# (root's) and the sources (SOURCE_OWNER's: root unless Tilt says otherwise).
FROM runtime AS gateway
ARG SOURCE_OWNER=0
COPY --from=deps-gateway /opt/venv /opt/venv
COPY --from=project /opt/project/ /opt/venv/
COPY --from=project /opt/data/ /app/
COPY --from=project --chown=${SOURCE_OWNER}:${SOURCE_OWNER} /opt/services/ /app/services/
CMD ["gateway"]

FROM runtime AS trigger-evaluator
ARG SOURCE_OWNER=0
COPY --from=deps-trigger-evaluator /opt/venv /opt/venv
COPY --from=project /opt/project/ /opt/venv/
COPY --from=project /opt/data/ /app/
COPY --from=project --chown=${SOURCE_OWNER}:${SOURCE_OWNER} /opt/services/ /app/services/
CMD ["trigger-evaluator"]

FROM runtime AS map-vision
ARG SOURCE_OWNER=0
COPY --from=deps-map-vision /opt/venv /opt/venv
COPY --from=project /opt/project/ /opt/venv/
COPY --from=project /opt/data/ /app/
COPY --from=project --chown=${SOURCE_OWNER}:${SOURCE_OWNER} /opt/services/ /app/services/
CMD ["map-vision"]

FROM runtime AS label-store
ARG SOURCE_OWNER=0
COPY --from=deps-label-store /opt/venv /opt/venv
COPY --from=project /opt/project/ /opt/venv/
COPY --from=project /opt/data/ /app/
COPY --from=project --chown=${SOURCE_OWNER}:${SOURCE_OWNER} /opt/services/ /app/services/
CMD ["label-store"]

FROM runtime AS inference
ARG SOURCE_OWNER=0
COPY --from=deps-inference /opt/venv /opt/venv
COPY --from=project /opt/project/ /opt/venv/
COPY --from=project /opt/data/ /app/
COPY --from=project --chown=${SOURCE_OWNER}:${SOURCE_OWNER} /opt/services/ /app/services/
CMD ["inference"]

FROM runtime AS trainer
ARG SOURCE_OWNER=0
COPY --from=deps-trainer /opt/venv /opt/venv
COPY --from=project /opt/project/ /opt/venv/
COPY --from=project /opt/data/ /app/
COPY --from=project --chown=${SOURCE_OWNER}:${SOURCE_OWNER} /opt/services/ /app/services/
CMD ["trainer"]

# The default target (no --target): every service in one image, as before.
FROM runtime AS all
ARG SOURCE_OWNER=0
COPY --from=deps-all /opt/venv /opt/venv
COPY --from=project /opt/project/ /opt/venv/
COPY --from=project /opt/data/ /app/
COPY --from=project --chown=${SOURCE_OWNER}:${SOURCE_OWNER} /opt/services/ /app/services/
CMD ["--help"]
