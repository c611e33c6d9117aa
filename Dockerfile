# syntax=docker/dockerfile:1
#
# Plot Palette: one image for the four services. The command picks the service:
#
#   docker run IMAGE palette-gateway      (or: python -m palette.gateway)
#   docker run IMAGE palette-scheduler    (or: python -m palette.scheduler)
#   docker run IMAGE palette-generator    (or: python -m palette.generator)
#   docker run IMAGE palette-accounting   (or: python -m palette.accounting)
#
# What is in it (docs/deployment.md, "The image", has the sizes): Debian slim with
# CPython 3.12 (the official python:3.12-slim image without pip, setuptools and
# the stdlib parts no service runs: stage python-runtime) and one virtual environment
# in /opt/palette/venv holding the four services, palette-common and their locked
# third-party dependencies (uv.lock, no dev/test/lint groups, no dev stack), slimmed
# by deploy/docker/slim-venv.sh. No compiler, no uv, no apt lists, no sources of
# the project: the services are installed as wheels. It runs as uid 10001.
#
# Build: docker build -t plot-palette .   (docker compose build does the same)

# 3.12, as the project's tests and benchmarks run (.python-version): from 3.12 on,
# aiohttp writes a request's body at once instead of in a task of its own, which
# made model calls 1-2 % faster end to end (docs/benchmarks.md).
ARG PYTHON_IMAGE=python:3.12-slim-bookworm
# The uv that wrote uv.lock (the lock's format must be one it reads).
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9
# Node.js for building the web page (services/gateway/ui needs 20.19+); only stage ui uses it.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${UV_IMAGE} AS uv

# ---------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

# binutils gives strip(1) to slim-venv.sh; it never reaches the final stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends binutils \
    && rm -rf /var/lib/apt/lists/*
COPY --from=uv /uv /usr/local/bin/uv

# 0 keeps .pyc files out of the image (~48 MB, about 1.5 s more start-up);
# build with --build-arg COMPILE_BYTECODE=1 to trade size for start-up time.
ARG COMPILE_BYTECODE=0
# UV_SYSTEM_CERTS: uv trusts the image's CA bundle, which a build behind a
# TLS-intercepting proxy replaces for the uv steps (npm ci in stage ui adds it to
# Node's roots) with the host's, passed as a build secret
# (`--secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt`): mounted
# while a step runs, never stored in a layer. Without it the image's own applies.
ENV UV_COMPILE_BYTECODE=${COMPILE_BYTECODE} \
    UV_SYSTEM_CERTS=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.12 \
    UV_PROJECT_ENVIRONMENT=/opt/palette/venv

WORKDIR /src

# 1. Third-party dependencies, from the lock file alone: this layer is rebuilt
#    only when uv.lock or a pyproject.toml changes.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY libs/devstack/pyproject.toml libs/devstack/
COPY services/gateway/pyproject.toml services/gateway/
COPY services/scheduler/pyproject.toml services/scheduler/
COPY services/generator/pyproject.toml services/generator/
COPY services/accounting/pyproject.toml services/accounting/
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca-certificates,target=/etc/ssl/certs/ca-certificates.crt \
    uv sync --frozen --no-default-groups --no-dev --no-install-workspace --package palette-gateway --package palette-scheduler --package palette-generator --package palette-accounting

# 2. The project itself, installed as wheels (no editable links to /src).
COPY libs/common libs/common
COPY services services
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca-certificates,target=/etc/ssl/certs/ca-certificates.crt \
    uv sync --frozen --no-default-groups --no-dev --no-editable --package palette-gateway --package palette-scheduler --package palette-generator --package palette-accounting

# 3. Slim the environment, then prove every service still loads and exports.
COPY deploy/docker deploy/docker
RUN sh deploy/docker/slim-venv.sh /opt/palette/venv \
    && PYTHONDONTWRITEBYTECODE=1 /opt/palette/venv/bin/python deploy/docker/smoke.py

# 4. The gateway's OpenAPI document: the web page's API types are generated from it (stage ui),
#    as make install does, so the page is built against this very gateway.
COPY tools/openapi.py tools/openapi.py
RUN PYTHONDONTWRITEBYTECODE=1 /opt/palette/venv/bin/python tools/openapi.py /src/openapi.json

# ---------------------------------------------------------------- ui
# The web page the gateway serves at /ui, built from its lock file (package-lock.json).
FROM ${NODE_IMAGE} AS ui
WORKDIR /ui
COPY services/gateway/ui/package.json services/gateway/ui/package-lock.json ./
# Behind a TLS-intercepting proxy npm needs the host's CA bundle: the same build secret
# as the uv steps, mounted while npm ci runs and added to Node's own roots
# (NODE_EXTRA_CA_CERTS) only when it is there (the official node image has no bundle).
RUN --mount=type=cache,target=/root/.npm \
    --mount=type=secret,id=ca-certificates,target=/etc/ssl/certs/ca-certificates.crt \
    if [ -s /etc/ssl/certs/ca-certificates.crt ]; then \
        export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt; \
    fi \
    && npm ci --no-audit --no-fund --loglevel=error
COPY services/gateway/ui ./
COPY --from=builder /src/openapi.json ./openapi.json
RUN npm run build --silent

# ------------------------------------------------ bedrock-emulator (dev only)
# The project's Bedrock emulator (palette-devstack), for docker compose's
# `emulator` profile: jobs run on one machine without AWS. Never deployed.
FROM builder AS emulator-builder
COPY libs/devstack libs/devstack
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca-certificates,target=/etc/ssl/certs/ca-certificates.crt \
    UV_PROJECT_ENVIRONMENT=/opt/palette/venv-emulator \
    uv sync --frozen --no-default-groups --no-dev --no-editable --package palette-devstack

FROM ${PYTHON_IMAGE} AS bedrock-emulator
RUN groupadd --system --gid 10001 palette \
    && useradd --system --uid 10001 --gid palette --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin palette
# Same path as in the builder: console scripts name their interpreter by absolute path.
COPY --from=emulator-builder /opt/palette/venv-emulator /opt/palette/venv-emulator
COPY deploy/docker/probe.py /opt/palette/probe.py
ENV PATH=/opt/palette/venv-emulator/bin:${PATH} PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /opt/palette/run
USER 10001:10001
EXPOSE 8100
CMD ["palette-bedrock-emulator", "--host", "0.0.0.0", "--port", "8100"]

# --------------------------------------------------------- python-runtime
# The official slim Python without what no service runs: pip, setuptools and
# wheel (the venv has its own packages), ensurepip's bundled wheels, IDLE,
# tkinter, lib2to3, turtledemo, pydoc's help topics and the C headers. Then
# flattened into one layer (FROM scratch, COPY /): files deleted in a layer on
# top of the base would still be in the image. deploy/docker/smoke.py fails the
# build if a service imports any of these modules.
FROM ${PYTHON_IMAGE} AS python-files
RUN rm -rf /usr/local/lib/python3.*/site-packages/pip /usr/local/lib/python3.*/site-packages/pip-* \
    /usr/local/lib/python3.*/site-packages/setuptools /usr/local/lib/python3.*/site-packages/setuptools-* \
    /usr/local/lib/python3.*/site-packages/pkg_resources /usr/local/lib/python3.*/site-packages/_distutils_hack \
    /usr/local/lib/python3.*/site-packages/distutils-precedence.pth \
    /usr/local/lib/python3.*/site-packages/wheel /usr/local/lib/python3.*/site-packages/wheel-* \
    /usr/local/lib/python3.*/ensurepip /usr/local/lib/python3.*/idlelib /usr/local/lib/python3.*/tkinter \
    /usr/local/lib/python3.*/lib2to3 /usr/local/lib/python3.*/turtledemo /usr/local/lib/python3.*/pydoc_data \
    /usr/local/lib/python3.*/lib-dynload/_tkinter.* /usr/local/include \
    /usr/local/bin/pip /usr/local/bin/pip3* /usr/local/bin/idle* /usr/local/bin/wheel

FROM scratch AS python-runtime
COPY --from=python-files / /
# What the base image's own ENV said (FROM scratch starts with none).
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8

# ---------------------------------------------------------------- runtime
# The default (last) stage: the image of the four services.
FROM python-runtime AS runtime

LABEL org.opencontainers.image.title="plot-palette" \
      org.opencontainers.image.description="Plot Palette services: gateway, scheduler, generator, accounting"

RUN groupadd --system --gid 10001 palette \
    && useradd --system --uid 10001 --gid palette --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin palette

# Owned by root and read-only to the service user.
COPY --from=builder /opt/palette/venv /opt/palette/venv
# The health probe of compose and Kubernetes (standard library only).
COPY deploy/docker/probe.py /opt/palette/probe.py
# The web page (static files; the gateway serves it at /ui, the other services ignore it).
COPY --from=ui /ui/dist /opt/palette/ui

ENV PATH=/opt/palette/venv/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PALETTE_LOG_JSON=true \
    PALETTE_GATEWAY_HOST=0.0.0.0 \
    PALETTE_GATEWAY_UI_DIR=/opt/palette/ui

# An empty working directory: no stray .env is read from it.
WORKDIR /opt/palette/run
USER 10001:10001
EXPOSE 8000

CMD ["palette-gateway"]
