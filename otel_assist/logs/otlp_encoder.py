"""OTLP/protobuf wire encoding of log batches, written by hand.

Why: the stock exporter's ``encode_logs(batch).SerializeToString()`` builds a protobuf
object per record, attribute and value, then serializes them: 25-38 µs per record on the
development VM, three times the caller's whole JSON log line, spent in the export thread
while it holds the GIL. Writing the wire format straight from the ``ReadableLogRecord``
costs a fraction of that (``bench/log_export.py``).

The contract is the official encoder's output (opentelemetry-exporter-otlp-proto-common,
``_internal._log_encoder``): our bytes decode to a message equal to ``encode_logs(batch)``,
and are byte-identical as well, since fields are written in field-number order and proto3
defaults are left out the same way. ``tests/core/test_otlp_log_encoder.py`` compares the
two on generated batches. Where the official encoder fails the whole batch (a body or a
timestamp it cannot encode), this one leaves out that record only and counts it.

Wire format used (https://protobuf.dev/programming-guides/encoding/): a field is a tag
``field_number << 3 | wire_type`` then the value; varints for ints, enums and lengths
(``int64`` negatives as ten-byte two's complement, no zigzag); ``fixed64`` little-endian
for timestamps and doubles; length-delimited for strings, bytes and sub-messages.
"""

from __future__ import annotations

import operator
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_assist._otel_compat import ReadableLogRecord
from otel_assist.redaction import escape_surrogates

# Tags, by message. Each is (field_number << 3) | wire_type, one byte for every field here.
# ExportLogsServiceRequest: 1 resource_logs. ResourceLogs: 1 resource, 2 scope_logs,
# 3 schema_url. ScopeLogs: 1 scope, 2 log_records, 3 schema_url.
_TAG_RESOURCE_LOGS = b"\x0a"
_TAG_RESOURCE = b"\x0a"
_TAG_SCOPE_LOGS = b"\x12"
_TAG_SCOPE = b"\x0a"
_TAG_LOG_RECORD = b"\x12"
_TAG_SCHEMA_URL = b"\x1a"
# LogRecord: 1 time_unix_nano (fixed64), 2 severity_number (enum), 3 severity_text,
# 5 body, 6 attributes, 7 dropped_attributes_count, 8 flags (fixed32), 9 trace_id,
# 10 span_id, 11 observed_time_unix_nano (fixed64), 12 event_name.
_TAG_TIME = 0x09
_TAG_SEVERITY_NUMBER = b"\x10"
_TAG_SEVERITY_TEXT = b"\x1a"
_TAG_BODY = b"\x2a"
_TAG_ATTRIBUTE = b"\x32"
_TAG_DROPPED = b"\x38"
_TAG_FLAGS = 0x45
_TAG_TRACE_ID = b"\x4a"
_TAG_SPAN_ID = b"\x52"
_TAG_OBSERVED_TIME = 0x59
_OBSERVED_TAG = bytes((_TAG_OBSERVED_TIME,))
_RECORD_TAG = _TAG_LOG_RECORD[0]
_TAG_EVENT_NAME = b"\x62"
# AnyValue (a oneof: a member set to its default is still written): 1 string_value,
# 2 bool_value, 3 int_value (int64), 4 double_value, 5 array_value, 6 kvlist_value,
# 7 bytes_value. ArrayValue and KeyValueList: 1 values. KeyValue: 1 key, 2 value.
_TAG_STRING = b"\x0a"
_TAG_INT = b"\x18"
_TAG_DOUBLE = 0x21
_TAG_ARRAY = b"\x2a"
_TAG_KVLIST = b"\x32"
_TAG_BYTES = b"\x3a"
_TAG_VALUES = b"\x0a"
_TAG_KEY = b"\x0a"
_TAG_VALUE = b"\x12"
# InstrumentationScope: 1 name, 2 version, 3 attributes. Resource: 1 attributes.
_TAG_SCOPE_NAME = b"\x0a"
_TAG_SCOPE_VERSION = b"\x12"
_TAG_SCOPE_ATTRIBUTE = b"\x1a"
_TAG_RESOURCE_ATTRIBUTE = b"\x0a"

_DOUBLE_VALUE_PREFIX = b"\x12\x09"  # KeyValue.value, 9 bytes long: AnyValue{double_value}
_TRUE_VALUE = b"\x10\x01"  # AnyValue{bool_value: true}
_FALSE_VALUE = b"\x10\x00"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64_MASK = 2**64 - 1
_ONE_BYTE = [bytes((i,)) for i in range(128)]
_TAGGED_FIXED64 = struct.Struct("<BQ").pack
_TAGGED_DOUBLE = struct.Struct("<Bd").pack
_TAGGED_FIXED32 = struct.Struct("<BI").pack

# Bounded caches of encoded pieces that repeat from record to record; cleared when full
# so that a stream of unique values cannot grow them without limit.
_CACHE_LIMIT = 4096
_CACHED_STRING_MAX = 128  # longer strings are unlikely to repeat; not cached


class EncodedLogRecord(NamedTuple):
    """One record already in its wire form (a ``log_records`` field: tag, length, body),
    with the resource and scope it is grouped under. ``LogQueue`` builds these straight
    from structlog event dicts (:meth:`OTLPLogEncoder.event_record`) in place of
    ``ReadableLogRecord`` objects; :meth:`OTLPLogEncoder.encode` takes both."""

    data: bytes
    resource: Resource
    instrumentation_scope: InstrumentationScope | None
    records: int = 1  # how many ``log_records`` fields ``data`` holds


class EncodedLogs(NamedTuple):
    """A serialized ``ExportLogsServiceRequest`` and how many records were left out of it
    because they could not be encoded."""

    data: bytes
    rejected: int


def varint(value: int) -> bytes:
    """Base-128 varint; a negative value is written as its 64-bit two's complement
    (ten bytes), which is how protobuf writes negative ``int64`` and enum values."""
    if 0 <= value < 0x80:
        return _ONE_BYTE[value]
    value &= _UINT64_MASK
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length(size: int) -> bytes:
    """The length prefix of a length-delimited field (sizes are never negative)."""
    if size < 0x80:
        return _ONE_BYTE[size]
    if size < 0x4000:
        return bytes(((size & 0x7F) | 0x80, size >> 7))
    return varint(size)


def _delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _length(len(payload)) + payload


def _optional_string(tag: bytes, text: str | None) -> bytes:
    """A proto3 ``string`` field without presence: empty or None is left out."""
    if not text:
        return b""
    return _delimited(tag, text.encode())


# -- AnyValue


def any_value(value: Any) -> bytes:
    """The body of an ``AnyValue`` message for ``value``, as the official ``_encode_value``
    builds it. The exact-type checks come first (the common case); anything else goes
    through the official function's ``isinstance`` order, so subclasses, ``bytearray`` and
    other sequences or mappings come out the same way."""
    kind = type(value)
    if kind is str:
        return _delimited(_TAG_STRING, value.encode())
    if kind is int:
        return _int_value(value)
    if kind is bool:
        return _TRUE_VALUE if value else _FALSE_VALUE
    if kind is float:
        return _TAGGED_DOUBLE(_TAG_DOUBLE, value)
    return _any_value_general(value)


def _int_value(value: int) -> bytes:
    if not _INT64_MIN <= value <= _INT64_MAX:  # protobuf refuses these too
        raise ValueError(f"integer out of int64 range: {value}")
    return _TAG_INT + varint(value)


def _any_value_general(value: object) -> bytes:
    if value is None:  # official: an empty AnyValue, present but with no member set
        return b""
    if isinstance(value, bool):
        return _TRUE_VALUE if value else _FALSE_VALUE
    if isinstance(value, str):
        return _delimited(_TAG_STRING, value.encode())
    if isinstance(value, int):
        return _int_value(int(value))
    if isinstance(value, float):
        return _TAGGED_DOUBLE(_TAG_DOUBLE, value)
    if isinstance(value, bytes):
        return _delimited(_TAG_BYTES, bytes(value))
    if isinstance(value, Sequence):
        items = b"".join(_delimited(_TAG_VALUES, any_value(item)) for item in value)
        return _delimited(_TAG_ARRAY, items)
    if isinstance(value, Mapping):
        pairs = b"".join(
            _delimited(_TAG_VALUES, _key_value(str(key), item)) for key, item in value.items()
        )
        return _delimited(_TAG_KVLIST, pairs)
    raise TypeError(f"Invalid type {type(value)} of value {value!r}")


def _key_value(key: str, value: object) -> bytes:
    """The body of a ``KeyValue`` message: the key (left out when empty) and the value
    (always written, even when empty)."""
    return _key_field(key) + _delimited(_TAG_VALUE, any_value(value))


def _key_field(key: str) -> bytes:
    """The key of a KeyValue; like protobuf, refuses anything but a string."""
    if not isinstance(key, str):
        raise TypeError(f"attribute key must be a string, not {type(key)}")
    return _optional_string(_TAG_KEY, key)


# -- Encoder


class OTLPLogEncoder:
    """Encodes batches of ``ReadableLogRecord`` into ``ExportLogsServiceRequest`` bytes.

    One instance per exporter: it keeps bounded caches of pieces that repeat across
    records and batches (attribute keys, short string attributes, resources and scopes).
    Resource and scope encodings are cached by object identity (the cache holds the object,
    so its id cannot be reused): both are immutable once built by the SDK.
    """

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._string_attributes: dict[tuple[str, str], bytes] = {}
        self._bodies: dict[str, bytes] = {}
        # event_record's: a plan per key sequence, and per attribute name the encoded
        # fields of its short string values (all tables together bounded, see
        # _string_attribute).
        self._shapes: dict[tuple[Any, ...], _Shape] = {}
        self._shape_config: tuple[Any, ...] = ()
        self._level_fields: dict[Any, bytes] = {}
        self._event_strings: dict[str, dict[str, bytes]] = {}
        self._string_entries = 0
        self._severities: dict[tuple[int | None, str | None], bytes] = {}
        self._resources: dict[int, tuple[Resource, bytes, bytes]] = {}
        self._scopes: dict[int, tuple[InstrumentationScope | None, bytes, bytes]] = {}

    def encode(self, batch: Sequence[ReadableLogRecord]) -> EncodedLogs:
        """Serialize ``batch``; a record that cannot be encoded is left out and counted."""
        groups, rejected = self._encode_records(batch)
        parts: list[bytes] = []
        for resource, scopes in groups.items():
            try:
                resource_logs = self._resource_logs(resource, scopes)
            except Exception:  # a resource or scope the official encoder fails on, too
                rejected += sum(
                    readable.records if type(readable) is EncodedLogRecord else 1
                    for readable in batch
                    if readable.resource is resource or readable.resource == resource
                )
                continue
            parts.append(_TAG_RESOURCE_LOGS)
            parts.append(_length(len(resource_logs)))
            parts.append(resource_logs)
        return EncodedLogs(b"".join(parts), rejected)

    def _encode_records(
        self, batch: Sequence[ReadableLogRecord]
    ) -> tuple[dict[Resource, dict[InstrumentationScope | None, list[bytes]]], int]:
        """Encoded records grouped by resource, then scope, as the official encoder groups
        them: dicts keyed by the SDK objects (their ``__eq__``/``__hash__`` decide), in order
        of first appearance. Objects seen before in the batch are found by identity, so a
        Resource's costly hash (a JSON dump of its attributes) runs once per object, not
        once per record."""
        groups: dict[Resource, dict[InstrumentationScope | None, list[bytes]]] = {}
        by_identity: dict[tuple[int, int], list[bytes]] = {}
        rejected = 0
        encode_record = self._log_record
        for readable in batch:
            if type(readable) is EncodedLogRecord:
                record = readable.data
            else:
                try:
                    record = encode_record(readable)
                except Exception:  # one bad record must not cost the batch
                    rejected += 1
                    continue
            resource = readable.resource
            scope = readable.instrumentation_scope or None
            identity = (id(resource), id(scope))
            records = by_identity.get(identity)
            if records is None:
                scopes = groups.setdefault(resource, {})
                records = scopes.setdefault(scope, [])
                by_identity[identity] = records
            records.append(record)
        return groups, rejected

    # -- resource and scope

    def _resource_logs(
        self, resource: Resource, scopes: dict[InstrumentationScope | None, list[bytes]]
    ) -> bytes:
        """The body of one ``ResourceLogs``: resource, its ``ScopeLogs``, schema_url."""
        resource_field, schema_field = self._resource_fields(resource)
        parts = [resource_field]
        for scope, records in scopes.items():
            scope_field, scope_schema_field = self._scope_fields(scope)
            body = b"".join((scope_field, *records, scope_schema_field))
            parts.append(_TAG_SCOPE_LOGS)
            parts.append(_length(len(body)))
            parts.append(body)
        parts.append(schema_field)
        return b"".join(parts)

    def _resource_fields(self, resource: Resource) -> tuple[bytes, bytes]:
        """(``resource`` field, ``schema_url`` field) of a ResourceLogs, cached."""
        cached = self._resources.get(id(resource))
        if cached is not None and cached[0] is resource:
            return cached[1], cached[2]
        encoded = _delimited(
            _TAG_RESOURCE, self._attributes(_TAG_RESOURCE_ATTRIBUTE, resource.attributes)
        )
        schema = _optional_string(_TAG_SCHEMA_URL, resource.schema_url)
        _bounded_put(self._resources, id(resource), (resource, encoded, schema), 64)
        return encoded, schema

    def _scope_fields(self, scope: InstrumentationScope | None) -> tuple[bytes, bytes]:
        """(``scope`` field, ``schema_url`` field) of a ScopeLogs, cached. No scope is an
        empty (but present) InstrumentationScope, as in the official encoder."""
        cached = self._scopes.get(id(scope))
        if cached is not None and cached[0] is scope:
            return cached[1], cached[2]
        if scope is None:
            encoded, schema = _delimited(_TAG_SCOPE, b""), b""
        else:
            body = (
                _optional_string(_TAG_SCOPE_NAME, scope.name)
                + _optional_string(_TAG_SCOPE_VERSION, scope.version)
                + self._attributes(_TAG_SCOPE_ATTRIBUTE, scope.attributes)
            )
            encoded = _delimited(_TAG_SCOPE, body)
            schema = _optional_string(_TAG_SCHEMA_URL, scope.schema_url)
        _bounded_put(self._scopes, id(scope), (scope, encoded, schema), 256)
        return encoded, schema

    # -- log record

    def _log_record(self, readable: ReadableLogRecord) -> bytes:
        """One ``log_records`` field (tag, length, LogRecord body). A record whose body
        or event name holds a lone surrogate (which UTF-8 cannot encode, so the official
        encoder fails the whole batch) is encoded with it escaped (``\\udcff``), as the
        JSON line shows it."""
        try:
            return self._log_record_fields(readable, readable.log_record.body)
        except UnicodeEncodeError:
            return self._log_record_fields(readable, escaped(readable.log_record.body))

    def _log_record_fields(self, readable: ReadableLogRecord, body: Any) -> bytes:
        log = readable.log_record
        parts: list[bytes] = []
        timestamp = log.timestamp
        if timestamp:
            parts.append(_TAGGED_FIXED64(_TAG_TIME, timestamp))
        parts.append(self._severity(getattr(log.severity_number, "value", None), log.severity_text))
        parts.append(self._body(body))
        if log.attributes:
            parts.append(self._attributes(_TAG_ATTRIBUTE, log.attributes))
        dropped = readable.dropped_attributes
        if dropped:
            parts.append(_TAG_DROPPED + varint(dropped))
        flags = int(log.trace_flags)
        if flags:
            parts.append(_TAGGED_FIXED32(_TAG_FLAGS, flags))
        if log.trace_id:
            parts.append(_delimited(_TAG_TRACE_ID, log.trace_id.to_bytes(16, "big")))
        if log.span_id:
            parts.append(_delimited(_TAG_SPAN_ID, log.span_id.to_bytes(8, "big")))
        observed = log.observed_timestamp
        if observed:
            parts.append(_TAGGED_FIXED64(_TAG_OBSERVED_TIME, observed))
        if log.event_name:
            parts.append(_delimited(_TAG_EVENT_NAME, escape_surrogates(log.event_name).encode()))
        body = b"".join(parts)
        return _TAG_LOG_RECORD + _length(len(body)) + body

    def event_record(
        self,
        ts: int,
        event_dict: Mapping[str, Any],
        levels: Mapping[Any, tuple[Any, str]],
        skipped: frozenset[str],
        renamed: Mapping[str, str],
        max_chars: int,
        max_count: int,
    ) -> bytes | None:
        """The ``log_records`` field of one bridged structlog line (see
        :meth:`event_records`), or None when the line needs the general path."""
        return self.event_records(
            [(ts, event_dict)], levels, skipped, renamed, max_chars, max_count
        )[0]

    def event_records(
        self,
        items: Sequence[Any],
        levels: Mapping[Any, tuple[Any, str]],
        skipped: frozenset[str],
        renamed: Mapping[str, str],
        max_chars: int,
        max_count: int,
    ) -> list[bytes | None]:
        """The ``log_records`` field of each bridged structlog line ``(timestamp_ns,
        event_dict)`` in ``items``, written straight from its event dict; None for an
        item that needs the general path (an SDK record, or a line this cannot write).

        Why: building a ``LogRecord`` and a ``ReadableLogRecord`` from the dict and then
        reading them back cost about as much as encoding (``bench/log_overhead.py``).
        This covers the common line only: a known level, a string body, and attributes
        that are short-enough strings, bools, floats or 64-bit ints, with no name that a
        rename could collide with, all together small enough (``max_chars`` characters,
        fewer than ``max_count``) that no size cap can apply. Anything else (a long value,
        a lone surrogate, a list, a nested dict) gives None, and the caller builds the
        record as before (``to_log_record``), caps and escaping included. The bytes are
        those of that path: ``tests/core/test_otlp_log_encoder.py`` compares them on
        generated event dicts.

        Where the time goes: what depends only on a line's keys (which are attributes,
        their encoded names, renames, the count) is decided once per key sequence
        (:class:`_Shape`), and what depends on the value types once per type sequence
        (:class:`_Plan`); a service logs a handful of each. Per line that leaves a table
        look-up per string value (severity, body and string attributes, done by ``map``
        in C) and a concatenation per number. One call per batch, not per line: the
        export thread's per-record calls were a fifth of its time.
        """
        config = (levels, skipped, renamed, max_chars, max_count)
        if config != self._shape_config:  # shapes hold what these arguments decide
            self._reset_shapes()
            self._shape_config = config
        out: list[bytes | None] = []
        append = out.append
        if max_chars < _CACHED_STRING_MAX:  # cached values could pass the caps
            return [None] * len(items)
        shapes = self._shapes
        get_shape = shapes.get
        tagged_time = _TAGGED_FIXED64
        one_byte = _ONE_BYTE
        for item in items:
            if type(item) is not tuple:
                append(None)  # an SDK record
                continue
            try:
                ts, event_dict = item
                shape = get_shape(tuple(event_dict))
                if shape is None:
                    shape = self._new_shape(event_dict, skipped, renamed, max_count)
                if shape is _NO_SHAPE:
                    append(None)
                    continue
                values = shape.getter(event_dict)  # (level, body, *attribute values)
                kinds = tuple(map(type, values))
                plan = shape.plans.get(kinds)
                if plan is None:
                    if len(shape.plans) >= _PLAN_LIMIT:
                        shape.plans.clear()
                    plan = shape.plans[kinds] = self._plan(shape, kinds)
                if plan is _NO_PLAN:
                    append(None)
                    continue
                # Severity, body, string and bool attributes from their tables, in C.
                fields = list(map(dict.get, plan.tables, values))
                for index, prefixes in plan.ints:
                    value = values[index]
                    if 0 <= value < 0x80:
                        fields[index] = prefixes[1] + one_byte[value]
                    elif 0 <= value < 0x4000:
                        fields[index] = prefixes[2] + bytes(((value & 0x7F) | 0x80, value >> 7))
                    elif _INT64_MIN <= value <= _INT64_MAX:
                        number = varint(value)
                        fields[index] = prefixes[len(number)] + number
                    else:
                        raise _Unwritable  # the general path writes it as text
                for index, prefix in plan.floats:
                    fields[index] = prefix + _TAGGED_DOUBLE(_TAG_DOUBLE, values[index])
                if None in fields and not self._fill_misses(fields, values, plan, levels):
                    append(None)
                    continue
                if shape.sized:  # enough attributes to reach the cap: count exactly
                    size = shape.names_size
                    for index in plan.strings:
                        size += len(values[index])
                    if size > max_chars:
                        append(None)
                        continue
                # time_unix_nano first, observed_time_unix_nano (the same value) last:
                # one pack, the observed field is its bytes under the other tag.
                time_field = tagged_time(_TAG_TIME, ts)
                fields.append(_OBSERVED_TAG + time_field[1:])
                record = time_field + b"".join(fields)  # type: ignore[arg-type]  # no None
                size = len(record)
                if 0x80 <= size < 0x4000:  # the usual record: a two-byte length
                    append(bytes((_RECORD_TAG, (size & 0x7F) | 0x80, size >> 7)) + record)
                else:
                    append(_TAG_LOG_RECORD + _length(size) + record)
            except Exception:  # the general path decides what becomes of it
                append(None)
        return out

    def _new_shape(
        self,
        event_dict: Mapping[str, Any],
        skipped: frozenset[str],
        renamed: Mapping[str, str],
        max_count: int,
    ) -> _Shape:
        """The shape of a key sequence seen for the first time, remembered (all shapes
        forgotten first when there are too many)."""
        keys = tuple(event_dict)
        if len(self._shapes) >= _SHAPE_LIMIT:
            self._reset_shapes()
        shape = self._shapes[keys] = self._shape(keys, skipped, renamed, max_count)
        return shape

    def _reset_shapes(self) -> None:
        """Forget every shape and string table (a new configuration, or too many shapes:
        a stream of lines with ever new keys cannot grow them without bound)."""
        self._shapes.clear()
        self._event_strings = {}
        self._string_entries = 0

    def _fill_misses(
        self,
        fields: list[bytes | None],
        values: tuple[Any, ...],
        plan: _Plan,
        levels: Mapping[Any, tuple[Any, str]],
    ) -> bool:
        """Fields not in their tables yet (a new level, body or string value), added to
        them; False when the line needs the general path."""
        for index, field in enumerate(fields):
            if field is not None:
                continue
            value = values[index]
            if index == 0:
                level = levels.get(value)
                if level is None:
                    return False
                field = self._severity(level[0].value, level[1])
                _bounded_put(self._level_fields, value, field, 64)
            elif index == 1:
                if len(value) > self._shape_config[3]:  # max_chars
                    return False
                try:
                    field = self._body(value)  # remembered there when short
                except UnicodeEncodeError:
                    return False
            else:
                field = self._string_attribute(plan.names[index], value, plan.tables[index])
                if field is None:
                    return False
            fields[index] = field
        return True

    def _shape(
        self, keys: tuple[Any, ...], skipped: frozenset[str], renamed: Mapping[str, str], count: int
    ) -> _Shape:
        """The plan for lines with these keys, in this order; ``_NO_SHAPE`` when such a
        line cannot be written directly (no ``event`` or ``level``, a key that is not a
        short plain string, a rename that would merge two fields, too many attributes
        for the count cap)."""
        if "event" not in keys or "level" not in keys:
            return _NO_SHAPE
        attributes: list[tuple[Any, str, bytes]] = []
        names_size = 0
        for key in keys:
            field = _event_key(key, skipped, renamed)
            if field is None:
                return _NO_SHAPE
            if field is _SKIP:
                continue  # not an attribute (body, level, ...)
            name, key_field, name_size = field
            if name is not key and name in keys:
                return _NO_SHAPE  # two fields would become one attribute
            attributes.append((key, name, key_field))
            names_size += name_size
        if len(attributes) >= count:
            return _NO_SHAPE
        getter = operator.itemgetter("level", "event", *(key for key, _, _ in attributes))
        # Cached strings are at most _CACHED_STRING_MAX long: below this no line of the
        # shape can reach the size cap, and the sizes need not be added up.
        sized = names_size + len(attributes) * _CACHED_STRING_MAX > self._shape_config[3]
        return _Shape(getter, tuple(attributes), names_size, sized, {})

    def _plan(self, shape: _Shape, kinds: tuple[type, ...]) -> _Plan:
        """How to write lines of ``shape`` whose values have these types."""
        if kinds[0] is not str or kinds[1] is not str:
            return _NO_PLAN  # level and body
        tables: list[dict[Any, bytes]] = [self._level_fields, self._bodies]
        names = ["", ""]
        ints: list[tuple[int, tuple[bytes, ...]]] = []
        floats: list[tuple[int, bytes]] = []
        strings: list[int] = []
        for index, ((_key, name, key_field), kind) in enumerate(
            zip(shape.attributes, kinds[2:], strict=True), start=2
        ):
            # What precedes the value in the attribute field: the field's tag and
            # length, the key, the value's tag and length, the AnyValue member's tag.
            def prefix(value_size: int, member: bytes, key_field: bytes = key_field) -> bytes:
                return (
                    _TAG_ATTRIBUTE
                    + _length(len(key_field) + 2 + value_size)
                    + key_field
                    + _TAG_VALUE
                    + _ONE_BYTE[value_size]
                    + member
                )

            table: dict[Any, bytes] = _NO_FIELDS
            if kind is str:
                table = self._event_strings.get(name)  # type: ignore[assignment]
                if table is None:
                    table = self._event_strings[name] = {}
                strings.append(index)
            elif kind is bool:
                table = {value: prefix(2, b"") + (_TRUE_VALUE if value else _FALSE_VALUE)
                         for value in (False, True)}  # fmt: skip
            elif kind is int:  # AnyValue{int_value}: tag + a varint of 1 to 10 bytes
                ints.append((index, tuple(prefix(n + 1, _TAG_INT) for n in range(11))))
            elif kind is float:  # AnyValue{double_value}: 9 bytes
                floats.append((index, prefix(9, b"")))
            else:
                return _NO_PLAN  # a structure, None, a datetime: the general path
            tables.append(table)
            names.append(name)
        return _Plan(tuple(tables), tuple(names), tuple(ints), tuple(floats), tuple(strings))

    def _string_attribute(self, name: str, value: str, values: dict[str, bytes]) -> bytes | None:
        """The attribute field of a short string value, remembered in ``values`` (the
        attribute's own table); None when it is too long to cache or holds a lone
        surrogate (the general path escapes it). All tables together hold at most
        ``_STRING_ENTRIES`` values: past that every table and shape starts afresh, so
        unique values (request ids) cannot grow them without bound."""
        if len(value) > _CACHED_STRING_MAX:
            return None
        try:
            pair = _key_value(name, value)
        except Exception:
            return None
        cached = _TAG_ATTRIBUTE + _length(len(pair)) + pair
        if len(values) >= _TABLE_LIMIT:
            # An attribute with this many distinct values (a correlation_id, a request id)
            # does not repeat: remembering its values only holds memory (at 65,536
            # entries that was 13 MiB of a hello-world service's RSS, bench/rss.py).
            # Starting its table afresh keeps the values that do repeat coming back.
            values.clear()
        self._string_entries += 1
        if self._string_entries > _STRING_ENTRIES:
            for table in self._event_strings.values():
                table.clear()
            self._string_entries = 1
        values[value] = cached
        return cached

    def _severity(self, number: int | None, text: str | None) -> bytes:
        """severity_number and severity_text fields; a handful of pairs, cached."""
        key = (number, text)
        cached = self._severities.get(key)
        if cached is None:
            cached = (_TAG_SEVERITY_NUMBER + varint(number) if number else b"") + _optional_string(
                _TAG_SEVERITY_TEXT, text
            )
            _bounded_put(self._severities, key, cached, 64)
        return cached

    def _body(self, body: Any) -> bytes:
        """The body field: always written (None gives an empty AnyValue, as official).
        Short string bodies (log messages repeat) are cached."""
        if type(body) is str and len(body) <= _CACHED_STRING_MAX:
            cached = self._bodies.get(body)
            if cached is None:
                cached = _delimited(_TAG_BODY, _delimited(_TAG_STRING, body.encode()))
                _bounded_put(self._bodies, body, cached, _CACHE_LIMIT)
            return cached
        return _delimited(_TAG_BODY, any_value(body))

    def _attributes(self, tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
        """Repeated ``KeyValue`` fields under ``tag`` (records, scopes and resources number
        the field differently, so the caches hold what follows the tag). An attribute that
        cannot be encoded is left out, as the official ``_encode_attributes`` does (it logs;
        logging here would feed the exporter's complaints back into the log pipeline)."""
        if not attributes:
            return b""
        parts: list[bytes] = []
        strings = self._string_attributes
        keys = self._keys
        for key, value in attributes.items():
            kind = type(value)
            if kind is str and len(value) <= _CACHED_STRING_MAX:
                cached = strings.get((key, value))
                if cached is None:
                    cached = _length_prefixed(_key_value, key, value)
                    if cached is None:
                        continue
                    _bounded_put(strings, (key, value), cached, _CACHE_LIMIT)
                parts.append(tag)
                parts.append(cached)
                continue
            key_field = keys.get(key)
            if key_field is not None:  # a known key: numbers written inline (hot path)
                if kind is int and _INT64_MIN <= value <= _INT64_MAX:
                    number = _ONE_BYTE[value] if 0 <= value < 0x80 else varint(value)
                    size = len(number)  # AnyValue{int_value} is 1 + size < 128 bytes
                    parts.append(
                        tag
                        + _length(len(key_field) + size + 3)
                        + key_field
                        + _TAG_VALUE
                        + _ONE_BYTE[size + 1]
                        + _TAG_INT
                        + number
                    )
                    continue
                if kind is float:  # AnyValue{double_value}: 9 bytes
                    parts.append(
                        tag
                        + _length(len(key_field) + 11)
                        + key_field
                        + _DOUBLE_VALUE_PREFIX
                        + _TAGGED_DOUBLE(_TAG_DOUBLE, value)
                    )
                    continue
            encoded = _length_prefixed(self._attribute_body, key, value)
            if encoded is not None:
                parts.append(tag)
                parts.append(encoded)
        return b"".join(parts)

    def _attribute_body(self, key: str, value: Any) -> bytes:
        """A KeyValue body, with the encoded key cached (the inline paths above need it)."""
        key_field = self._keys.get(key)
        if key_field is None:
            key_field = _key_field(key)
            _bounded_put(self._keys, key, key_field, _CACHE_LIMIT)
        return key_field + _delimited(_TAG_VALUE, any_value(value))


def _length_prefixed(encode: Callable[[str, Any], bytes], key: str, value: Any) -> bytes | None:
    """``encode(key, value)`` with its length prefix, or None when it cannot be encoded."""
    try:
        body = encode(key, value)
    except UnicodeEncodeError:  # a lone surrogate: escaped, not left out
        try:
            body = encode(escape_surrogates(key), escaped(value))
        except Exception:
            return None
    except Exception:  # left out, as the official encoder does
        return None
    return _length(len(body)) + body


def escaped(value: Any) -> Any:
    """``value`` with lone surrogates escaped in every string, keys included (the rare
    path: only after UTF-8 encoding failed)."""
    if isinstance(value, str):
        return escape_surrogates(value)
    if isinstance(value, bytes | bytearray):
        return value
    if isinstance(value, Mapping):
        return {escaped(k): escaped(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [escaped(v) for v in value]
    return value


def _event_key(
    key: Any, skipped: frozenset[str], renamed: Mapping[str, str]
) -> tuple[str, bytes, int] | None:
    """(attribute name, its encoded KeyValue key field, the name's share of the size
    estimate) for an event-dict key; ``_SKIP`` when the key is not an attribute; None
    when event_record cannot write it (not a plain string, too long, a lone surrogate)."""
    if type(key) is not str or len(key) > _CACHED_STRING_MAX:
        return None
    if key in skipped:
        return _SKIP
    name = renamed.get(key, key)
    try:
        return name, _key_field(name), len(name) + 24  # as sized_attributes counts it
    except Exception:
        return None


_SKIP = ("", b"", 0)


class _Shape(NamedTuple):
    """What event_record knows about lines with one sequence of keys: a getter of
    (level, body, *attribute values), per attribute (event-dict key, attribute name,
    encoded key field), the names' share of the size estimate, whether a line of this
    shape can come near the size cap, and a :class:`_Plan` per sequence of value types."""

    getter: Callable[[Mapping[str, Any]], tuple[Any, ...]]
    attributes: tuple[tuple[Any, str, bytes], ...]
    names_size: int
    sized: bool
    plans: dict[tuple[type, ...], _Plan]


class _Plan(NamedTuple):
    """For one shape and one sequence of value types, by position in the getter's tuple:
    the table each value's encoded field is looked up in (severities, bodies, a string
    attribute's values, a bool attribute's two fields; an empty one for numbers), the
    attribute names; the positions of ints (with the field's prefix for each varint
    length) and floats (with the prefix of the 9 value bytes), written inline; and the
    positions of strings (for the size estimate)."""

    tables: tuple[dict[Any, bytes], ...]
    names: tuple[str, ...]
    ints: tuple[tuple[int, tuple[bytes, ...]], ...]
    floats: tuple[tuple[int, bytes], ...]
    strings: tuple[int, ...]


class _Unwritable(Exception):
    """A line event_records leaves to the general path (an int past 64 bits)."""


_NO_SHAPE = _Shape(operator.itemgetter("event"), (), -1, True, {})
_NO_PLAN = _Plan((), (), (), (), ())
_PLAN_LIMIT = 16
_NO_FIELDS: dict[Any, bytes] = {}
_SHAPE_LIMIT = 256
_STRING_ENTRIES = 16_384
_TABLE_LIMIT = 512  # values remembered per attribute (see _string_attribute)


def _bounded_put(cache: dict[Any, Any], key: Any, value: Any, limit: int) -> None:
    """Insert into a cache, emptying it first when it is full (cheap, and the entries
    that matter come back within a batch)."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
