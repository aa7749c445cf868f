# mailflow worker image.
#   docker build -t mailflow .                                  (amd64)
#   docker buildx build --platform linux/arm64 -t mailflow .    (Graviton / ARM64 Fargate)
# No `# syntax=` line: nothing here needs a newer Dockerfile frontend, and without it
# BuildKit builds offline (it would otherwise pull docker/dockerfile from Docker Hub).
# Dependencies come from requirements.lock (hash-pinned, universal for amd64 and arm64;
# regenerate with tools/lock.sh). Every locked package ships wheels, so no compiler is
# needed in either stage.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with the locked dependencies and the mailflow package ---------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY requirements.lock ./
# --require-hashes: a tampered or re-published artefact fails the build.
RUN /opt/venv/bin/pip install --no-deps --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY mailflow ./mailflow
# --no-deps: everything the package needs is already installed from the lock.
RUN /opt/venv/bin/pip install --no-deps . \
    && /opt/venv/bin/python -m compileall -q /opt/venv

# --- runtime: slim base + the virtualenv, non-root, read-only-root friendly ---------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="mailflow" \
      org.opencontainers.image.description="SES inbound to SQS, SQS outbound through SES" \
      org.opencontainers.image.licenses="MIT"
# PYTHONDONTWRITEBYTECODE: bytecode was compiled at build time; nothing is written at run
# time, so the container runs with a read-only root filesystem. Only /tmp is written:
# inbound mail over 8 MB is spooled there (tempfile), so it is a VOLUME (below).
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp \
    MAILFLOW_HTTP_PORT=8080
RUN groupadd --system --gid 10001 mailflow \
    && useradd --system --uid 10001 --gid mailflow --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin mailflow
COPY --from=build /opt/venv /opt/venv
# /tmp is a volume, world-writable with the sticky bit. Fargate gives a task's volumes
# root:root 0755 unless the image declares VOLUME at the path, in which case the volume
# starts as a copy of the image's directory: without this, uid 10001 cannot write /tmp
# there ("No usable temporary directory") and every mail over 8 MB fails. Docker does the
# same with `--read-only` and no tmpfs. Its size is the task's ephemeral storage.
RUN chmod 1777 /tmp
VOLUME /tmp
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
# No curl in a slim image: the health check is a few lines of standard-library Python.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MAILFLOW_HTTP_PORT', '8080'), timeout=3)"]
# Exec form: the worker is PID 1 and receives SIGTERM directly. It installs its own
# SIGTERM/SIGINT handlers (graceful drain within MAILFLOW_SHUTDOWN_GRACE_SECONDS) and
# starts no child processes, so no init (tini / --init) is needed to forward signals
# or reap zombies.
STOPSIGNAL SIGTERM
ENTRYPOINT ["mailflow"]
CMD ["run"]
