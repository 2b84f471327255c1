# One image for rest_service and the demo workload (docker-compose.yml runs it twice with
# different commands). Installs the package with the `demo` extra (rest + queues + fakeredis).
FROM python:3.12.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Metadata first, sources after: the dependency layer is rebuilt only when they change.
COPY pyproject.toml README.md ./
COPY otel_assist ./otel_assist
COPY rest_service ./rest_service
RUN pip install '.[demo]'

# Never run as root; the embedded-default data directory must be writable by the user.
RUN useradd --system --uid 10001 --home-dir /app app \
    && mkdir -p /app/.otel-assist \
    && chown app /app/.otel-assist
USER app

EXPOSE 8000
# rest_service by default; compose runs `rest-service migrate` first, and the demo profile
# overrides the command with `otel-assist demo`.
CMD ["rest-service", "serve", "--host", "0.0.0.0", "--port", "8000"]
