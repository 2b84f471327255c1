"""``otel-assist follow CORRELATION_ID``: one request's timeline in the terminal.

The same timeline as the admin correlation page (``rest_service.timeline.build``, the same
sources: Loki's query API from LOKI_URL and Postgres/SQLite from DATABASE_URL), drawn with
rich: a waterfall of one bar per service / queue hop / job, then every event in time order
with its gap and duration.
"""

from __future__ import annotations

import asyncio

from rich.console import Console
from rich.table import Table
from rich.text import Text

from otel_assist import correlation
from rest_service import timeline as timeline_mod
from rest_service.admin.presentation import fmt_duration_ms
from rest_service.core.config import Settings
from rest_service.core.db import Database
from rest_service.loki import LokiClient

BAR_WIDTH = 40
_KIND_STYLE = {"log": "cyan", "push": "yellow", "pop": "yellow", "job": "green"}
_LEVEL_STYLE = {"warn": "yellow", "error": "red", "fatal": "bold red", "debug": "dim"}


def _secs(value: float | None) -> str:
    return "" if value is None else fmt_duration_ms(value * 1000)


def _bar(start: float, end: float, total: float) -> Text:
    if total <= 0:
        return Text("█", style="blue")
    left = round(BAR_WIDTH * start / total)
    width = max(1, round(BAR_WIDTH * (end - start) / total))
    left = min(left, BAR_WIDTH - width)
    return Text(" " * left + "█" * width + " " * (BAR_WIDTH - left - width), style="blue")


def render(tl: timeline_mod.Timeline, console: Console) -> None:
    console.print(f"[bold]Timeline of {tl.correlation_id}[/bold]")
    if tl.notice:
        console.print(f"[yellow]{tl.notice}. Below: what the database has.[/yellow]")
    if not tl.events:
        console.print("Nothing recorded with this correlation_id.")
        return
    longest = tl.longest_gap
    summary = f"{len(tl.events)} events over {_secs(tl.total_s)}"
    if longest is not None and longest.gap_s > 0:
        summary += f"; longest gap {_secs(longest.gap_s)} before “{longest.title[:40]}”"
    console.print(summary)
    water = Table(title="Waterfall", show_lines=False)
    water.add_column("service / hop")
    water.add_column("events", justify="right")
    water.add_column("from", justify="right")
    water.add_column("to", justify="right")
    water.add_column(f"0 … {_secs(tl.total_s)}", no_wrap=True)
    for b in tl.bars:
        water.add_row(
            b.lane,
            str(b.events),
            f"+{_secs(b.start_s)}",
            f"+{_secs(b.end_s)}",
            _bar(b.start_s, b.end_s, tl.total_s),
        )
    console.print(water)
    events = Table(title="Events")
    for name, justify in (
        ("time (UTC)", "left"),
        ("+since first", "right"),
        ("gap", "right"),
        ("service / hop", "left"),
        ("what", "left"),
        ("duration / wait", "right"),
    ):
        events.add_column(name, justify=justify)  # type: ignore[arg-type]
    for i, e in enumerate(tl.events):
        what = Text()
        if e.kind == "log":
            what.append(f"[{e.level_shown}] ", style=_LEVEL_STYLE.get(e.level, ""))
        else:
            what.append(f"[{e.kind}] ", style=_KIND_STYLE[e.kind])
        what.append(e.title[:200])
        if e.detail:
            what.append(f"  {e.detail[:80]}", style="dim")
        gap = Text(_secs(e.gap_s) if i else "", style="bold red" if e is longest else "")
        wait = _secs(e.duration_s) + (" wait" if e.kind == "pop" and e.duration_s else "")
        events.add_row(
            e.at.strftime("%H:%M:%S.%f")[:-3],
            f"+{_secs(e.offset_s)}",
            gap,
            e.lane,
            what,
            wait,
        )
    console.print(events)
    if tl.truncated:
        console.print(f"[yellow]Only the first {len(tl.events)} events are shown.[/yellow]")


async def _follow(cid: str, settings: Settings, console: Console) -> int:
    db = Database(settings)
    try:
        tl = await timeline_mod.build(cid, db, LokiClient(settings))
    finally:
        await db.dispose()
    render(tl, console)
    return 0


def main(cid: str, console: Console | None = None) -> int:
    """Print the timeline; 2 for an invalid id (nothing to look up)."""
    console = console or Console()
    if not correlation.is_valid(cid):
        console.print("correlation id: letters, digits and . _ : - only (at most 128)")
        return 2
    return asyncio.run(_follow(cid, Settings(), console))
