"""Metrics: the catalog of every instrument and the fast paths that record into it.

``instruments`` is the catalog (names, units, attribute allowlists) and the domain helpers
(``llm_call``, ``tool_call``, ...); ``preaggregation`` the one recording mechanism (plain-Python
aggregates with lock-consistent snapshots); ``http``, ``redis`` and ``workers`` the
per-concern recorders. ``from otel_assist import metrics`` keeps the
names the old single module had.
"""

from otel_assist.metrics.instruments import (
    CATALOG,
    DB_BUCKETS,
    HTTP_BUCKETS,
    JOB_BUCKETS,
    JOB_STATUSES,
    LEVELS,
    LLM_BUCKETS,
    OTHER,
    QUEUE_BUCKETS,
    RAG_BUCKETS,
    SPECS,
    SUCCESS_ERROR,
    TOKEN_BUCKETS,
    AttributeFolder,
    Catalog,
    Instrument,
    Kind,
    LLMCall,
    Spec,
    catalog,
    count_message_processed,
    llm_call,
    markdown_table,
    rag_search,
    record_llm_call,
    record_memory_operation,
    tool_call,
)

__all__ = [
    "CATALOG",
    "DB_BUCKETS",
    "HTTP_BUCKETS",
    "JOB_BUCKETS",
    "JOB_STATUSES",
    "LEVELS",
    "LLM_BUCKETS",
    "OTHER",
    "QUEUE_BUCKETS",
    "RAG_BUCKETS",
    "SPECS",
    "SUCCESS_ERROR",
    "TOKEN_BUCKETS",
    "AttributeFolder",
    "Catalog",
    "Instrument",
    "Kind",
    "LLMCall",
    "Spec",
    "catalog",
    "count_message_processed",
    "llm_call",
    "markdown_table",
    "rag_search",
    "record_llm_call",
    "record_memory_operation",
    "tool_call",
]
