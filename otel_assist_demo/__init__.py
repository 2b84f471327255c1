"""``otel-assist demo``: a simulated assistant system, instrumented as real services are.

Everything runs in one process and one event loop, each part written the way a real
service would use otel_assist (queue producer/consumer, metric helpers, job tracking,
the history shipper, the ASGI middleware):

* ``telegram_bot``: synthetic users send messages to ``to_secretary``;
* ``assistant``: consumes them, fake LLM calls, tool calls, RAG searches, memory lookups
  and saves through rest_service's API, replies to ``to_telegram``;
* ``telegram_sender``: consumes ``to_telegram``;
* ``cron``: APScheduler jobs (reminders, memory extraction, reminder refresh);
* ``rest_server``: rest_service (API + admin pages) under uvicorn, receiving the history.

``runner`` wires them together on embedded defaults (``embedded_redis``, SQLite) unless
REDIS_URL / DATABASE_URL / OTEL_EXPORTER_OTLP_ENDPOINT point at real servers; ``summary``
draws the live terminal view.

This package is an application of the library, not part of it: ``otel_assist`` never
imports it or ``rest_service`` (tests/core/test_layout.py checks). ``cli`` is the
``otel-assist`` command (``demo`` and ``follow``, both application commands) and needs
nothing but the core install to print its help; the demo modules need the [demo] extra,
which ``cli`` and ``runner`` name in one line when it is missing.
"""
