# One image for rest_service and the demo workload (docker-compose.yml runs it twice with
# different commands). Installs the package with the `demo` extra (rest + queues + fakeredis)
# at exactly the versions in docker/requirements.lock (tests/test_packaging.py checks that
# the lock covers every dependency of the extra).
FROM python:3.12.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# The pinned dependencies first, sources after: that layer is rebuilt only when the lock changes.
COPY docker/requirements.lock ./docker/requirements.lock
RUN pip install --no-deps -r docker/requirements.lock
COPY pyproject.toml README.md LICENSE ./
COPY otel_assist ./otel_assist
COPY otel_assist_demo ./otel_assist_demo
COPY rest_service ./rest_service
# --no-deps: everything it needs is already installed from the lock; pip check proves it.
RUN pip install --no-deps '.[demo]' && pip check
COPY docker/entrypoint.py /usr/local/bin/otel-assist-entrypoint.py

# Never run as root; the embedded-default data directory must be writable by the user.
RUN useradd --system --uid 10001 --home-dir /app app \
    && mkdir -p /app/.otel-assist \
    && chown app /app/.otel-assist
USER app

EXPOSE 8000
# Builds DATABASE_URL / REDIS_URL from POSTGRES_* / REDIS_* parts (passwords percent-encoded).
ENTRYPOINT ["python", "/usr/local/bin/otel-assist-entrypoint.py"]
# rest_service by default; compose runs `rest-service migrate` first, and the demo profile
# overrides the command with `otel-assist demo`.
CMD ["rest-service", "serve", "--host", "0.0.0.0", "--port", "8000"]
