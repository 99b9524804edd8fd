# syntax=docker/dockerfile:1
#
# SIM Watcher, the daemon, as an unprivileged user. docker-compose.yml runs it with
# PostgreSQL. On its own it keeps a SQLite file in /data:
#
#   docker build -t sim-watcher .
#   docker run -d -v "$PWD/watcher.yaml:/config/watcher.yaml:ro" -v sim-watcher:/data sim-watcher

FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A virtualenv is one directory to copy into the final stage, without pip's build
# dependencies (hatchling) or the sources. Every dependency ships a manylinux wheel
# (psycopg[binary] included), so no compiler is needed.
RUN python -m venv /opt/venv

WORKDIR /src
COPY pyproject.toml README.md ./
# pyproject force-includes this file into the wheel as watcher/operators.yaml.
COPY config/operators.yaml config/
COPY scrapers scrapers
COPY watcher watcher
RUN /opt/venv/bin/pip install .


FROM python:3.11-slim

# PYTHONUNBUFFERED: console:// reminders reach `docker logs` at once, not per 8 KiB.
# XDG_DATA_HOME: the default SQLite database goes to /data/sim-watcher/watcher.db.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    XDG_DATA_HOME=/data \
    WATCHER_CONFIG=/config/watcher.yaml

RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home watcher \
    && install -d -o watcher -g watcher /data

COPY --from=build /opt/venv /opt/venv

# Numeric, so an orchestrator's runAsNonRoot check can verify it.
USER 10001:10001
WORKDIR /data

# `watcher health` fails until the first planning pass (seconds after start; the start
# period covers it) and when no pass finished in the last 3 minutes (one runs every 30 s).
HEALTHCHECK --interval=60s --timeout=30s --start-period=60s --retries=3 \
    CMD ["watcher", "health", "-c", "/config/watcher.yaml"]

ENTRYPOINT ["watcher"]
CMD ["run", "-c", "/config/watcher.yaml"]
