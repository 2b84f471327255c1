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
"""

from otel_assist.extras import require

# Every module below needs the demo extra; say so in one line instead of "No module named".
require("demo", "otel_assist.demo")
