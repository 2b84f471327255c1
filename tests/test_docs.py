"""The README is the front door and docs/ holds the rest: both must stay true to the code.

Every table that restates the code is regenerated or cross-checked here: the metric table
(from the catalog, with label names as a real /metrics page shows them), the configuration
tables (against every variable the code reads, with defaults), the examples (included
verbatim), and every relative link (to a file that exists, and an anchor that exists).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from otel_assist.metrics.instruments import CATALOG
from otel_assist.settings import DECLARED, VARIABLES

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
PAGES = sorted(DOCS.glob("*.md"))
CONFIGURATION = (DOCS / "configuration.md").read_text()


def _prometheus_label(attribute: str) -> str:
    """What the OpenTelemetry Prometheus exporter (and the Collector's remote write) make of
    an attribute name: every character outside ``[a-zA-Z0-9_]`` becomes ``_``."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", attribute)


def metric_table() -> str:
    """The metric table of docs/metrics.md, generated from the catalog."""
    rows = ["| Prometheus name | type | unit | labels | description |", "|---|---|---|---|---|"]
    for spec in CATALOG:
        labels = ", ".join(
            f"`{_prometheus_label(k)}`" + (f" ({', '.join(sorted(v))})" if v else "")
            for k, v in spec.attributes.items()
        )
        kind = {"observable_counter": "counter", "updown": "gauge"}.get(spec.kind, spec.kind)
        rows.append(
            f"| `{spec.prometheus_name}` | {kind} | `{spec.unit}` | {labels} | {spec.description} |"
        )
    return "\n".join(rows)


# ----------------------------------------------------------------------------- README


def test_readme_is_one_screen_with_the_two_commands_first() -> None:
    lines = README.splitlines()
    assert len(lines) <= 50, f"README has {len(lines)} lines; move the rest to docs/"
    top = README[:600]
    assert "make demo" in top and "make test" in top
    # next to `make test`: what it installs and how long the first run takes
    assert "installs PostgreSQL" in top and "first time" in top
    assert "make test-fast" in README


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_install_works_today() -> None:
    """The package is not on the index yet: the README must not tell anyone to
    `pip install otel-assist` without saying where from."""
    assert not re.search(r"pip install '?otel-assist'?\s*$", README, re.M)
    assert "git clone" in README and "git+" in README


# ----------------------------------------------------------------------------- links


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(text: str) -> set[str]:
    in_code = False
    anchors = set()
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"^#{1,6} (.+)$", line)):
            anchors.add(_slug(m.group(1)))
    return anchors


def test_every_relative_link_resolves() -> None:
    broken = []
    for page in [ROOT / "README.md", *PAGES]:
        text = page.read_text()
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            path_part, _, anchor = target.partition("#")
            dest = (page.parent / path_part).resolve() if path_part else page
            if not dest.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest.read_text()):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def test_the_index_lists_every_page() -> None:
    index = (DOCS / "index.md").read_text()
    missing = [p.name for p in PAGES if p.name != "index.md" and f"({p.name})" not in index]
    assert not missing, f"docs/index.md does not link {missing}"


def test_no_page_repeats_a_heading() -> None:
    for page in [ROOT / "README.md", *PAGES]:
        in_code, seen, repeated = False, set(), []
        for line in page.read_text().splitlines():
            if line.startswith("```"):
                in_code = not in_code
            elif not in_code and line.startswith("#"):
                if line in seen:
                    repeated.append(line)
                seen.add(line)
        assert not repeated, f"{page.name}: {repeated}"


# ----------------------------------------------------------------------------- examples


def test_examples_are_included_verbatim() -> None:
    """A block marked ``<!-- example: examples/x.py -->`` is that file, byte for byte."""
    included = set()
    for page in PAGES:
        text = page.read_text()
        for name, block in re.findall(
            r"<!-- example: (examples/[\w.]+) -->\n```python\n(.*?)```\n", text, re.S
        ):
            assert block == (ROOT / name).read_text(), (
                f"{page.name}: {name} differs; run python scripts/include_examples.py"
            )
            included.add(name)
    every = {f"examples/{p.name}" for p in (ROOT / "examples").glob("*.py")}
    assert included == every, f"not included in docs/: {sorted(every - included)}"


# ----------------------------------------------------------------------------- metrics


def test_metric_table_is_the_catalog() -> None:
    assert metric_table() in (DOCS / "metrics.md").read_text()


def test_metric_labels_are_what_a_real_metrics_page_shows() -> None:
    """The HTTP histogram's labels on a real /metrics page (a FastAPI app, otel_assist's
    middleware, the OpenTelemetry Prometheus exporter) are the documented ones plus the
    otel_scope_* labels the page explains."""
    script = """
import otel_assist
from fastapi import FastAPI
from fastapi.testclient import TestClient
from otel_assist.web.asgi import instrument_app
otel_assist.configure("docs_check", logs_exporters=("none",))
app = instrument_app(FastAPI())
@app.get("/items/{item_id}")
def item(item_id: str) -> dict[str, str]:
    return {}
client = TestClient(app)
client.get("/items/1")
print(client.get("/metrics").text)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("http_server_request_duration"))
    shown = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"", line)) - {"le"}
    page = (DOCS / "metrics.md").read_text()
    row = next(r for r in page.splitlines() if r.startswith("| `http_server_request_duration"))
    documented = set(re.findall(r"`([a-z_]+)`", row.split("|")[4]))
    scope = {s for s in shown if s.startswith("otel_scope_")}
    assert scope and all(f"`{s}`" in page for s in scope), scope
    assert shown - scope == documented, (shown, documented)


# ----------------------------------------------------------------------------- configuration


def _table_rows(text: str) -> dict[str, str]:
    """``{variable: default cell}`` for every table row that starts with a `VARIABLE`."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"^\| `([A-Z][A-Z0-9_]+)`(?: / `[A-Z_]+`)? \| ([^|]*) \|", line)
        if m:
            rows[m.group(1)] = m.group(2).strip()
    return rows


def _code_variables() -> set[str]:
    """Every ``"OTEL_..."`` string literal in the library's source."""
    names: set[str] = set()
    for path in (ROOT / "otel_assist").rglob("*.py"):
        names |= set(re.findall(r'"(OTEL_[A-Z_]+[A-Z])"', path.read_text()))
    return names


# The checks below are generated from otel_assist.settings.VARIABLES (name, type, default,
# doc of every variable the library reads; its reader refuses an undeclared name), so a new
# variable is checked the moment it is declared, with no list here to keep in step.


def test_the_library_reads_only_declared_variables() -> None:
    found = _code_variables()
    assert "OTEL_ASSIST_LOG_LEVEL" in found and "OTEL_ASSIST_HISTORY_URL" in found
    undeclared = sorted(found - set(DECLARED))
    assert not undeclared, f"declare these in otel_assist.settings.VARIABLES: {undeclared}"


def test_every_declared_variable_is_documented() -> None:
    rows = _table_rows(CONFIGURATION)
    # Aliases and paired variables are named in their row's first cell, not first in it.
    missing = [
        v.name for v in VARIABLES if v.name not in rows and f"`{v.name}`" not in CONFIGURATION
    ]
    assert not missing, f"undocumented in docs/configuration.md: {missing}"


def test_no_table_row_names_a_variable_the_library_does_not_declare() -> None:
    stale = sorted(
        n for n in _table_rows(CONFIGURATION) if n.startswith("OTEL_") and n not in DECLARED
    )
    assert not stale, f"docs/configuration.md documents variables nothing reads: {stale}"


def _shown(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_documented_defaults_are_the_declared_ones() -> None:
    rows = _table_rows(CONFIGURATION)
    with_default = [v for v in VARIABLES if v.default is not None]
    assert len(with_default) > 30
    wrong = []
    for var in with_default:
        cell = rows.get(var.name, "")
        first = cell.split()[0].strip("`") if cell.strip() else ""
        if first != _shown(var.default):
            wrong.append(f"{var.name}: documented {cell!r}, declared {_shown(var.default)}")
    assert not wrong, wrong


def test_the_documented_default_check_can_fail() -> None:
    """The comparison above, on a table that states a wrong default."""
    var = DECLARED["OTEL_ASSIST_LOG_BATCH_SIZE"]
    rows = _table_rows(f"| `{var.name}` | `{int(var.default or 0) + 1}` | records |")
    assert rows[var.name].strip("`") != _shown(var.default)


def test_every_rest_service_setting_is_in_the_table() -> None:
    from rest_service.core.config import Settings

    rows = _table_rows(CONFIGURATION)
    missing = sorted(f.upper() for f in Settings.model_fields if f.upper() not in rows)
    assert not missing, f"rest_service settings missing from docs/configuration.md: {missing}"


def test_documented_rest_service_defaults_are_the_code_defaults() -> None:
    """Generated from rest_service's Settings fields: each field with a default documents
    that default first in its row (numbers compared as numbers, lists comma-joined)."""
    from pydantic_core import PydanticUndefined

    from rest_service.core.config import Settings

    rows = _table_rows(CONFIGURATION)
    wrong, checked = [], 0
    for name, field in Settings.model_fields.items():
        default = field.default
        if field.default_factory is not None:
            default = field.default_factory()  # type: ignore[call-arg]
        if default is None or default is PydanticUndefined or default == []:  # "unset"
            continue
        cell = rows.get(name.upper(), "")
        first = cell.split()[0].strip("`") if cell.strip() else ""
        checked += 1
        if isinstance(default, bool):
            ok = first == str(default).lower()
        elif isinstance(default, int | float):
            try:
                ok = float(first) == float(default)
            except ValueError:
                ok = False
        elif isinstance(default, list):
            ok = first == ",".join(map(str, default))
        else:
            ok = first == str(default)
        if not ok:
            wrong.append(f"{name.upper()}: documented {cell!r}, code {default!r}")
    assert checked > 20
    assert not wrong, wrong
