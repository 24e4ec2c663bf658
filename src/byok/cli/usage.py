"""`byok usage`: what the usage ledger holds, summed by day, client, model,
key (or any of hour, day, month, client, provider, key, model), as a table,
CSV or JSON.

The ledger is found as the proxy finds it: ``--db``, else ``BYOK_USAGE_DB``,
else the ``[usage] path`` of the config (``--config`` or ``BYOK_CONFIG``;
only that table is read), else the platform's default.  It is opened
read-only: this command never creates or changes it.  No file there yet is
not a mistake (nothing was recorded): a line says so, and the exit status
is 0.  A file that cannot be read is: a line, and 2.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from ..config import default_usage_path, read_usage
from ..telemetry import usage_query
from ..telemetry.usage_book import GROUPS, HOUR, MEASURES, UsageBookError, read_rows
from ..telemetry.usage_query import COST_DECIMALS, parse_by, parse_when, start_of_month
from .tables import plain

DB_ENV = "BYOK_USAGE_DB"
FORMATS = ("table", "csv", "json")
DEFAULT_BY = ",".join(usage_query.DEFAULT_BY)
HEADINGS = {
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
    "cost": "cost (USD)",
}
# an option of `byok usage` that cannot be read, said in one line
UsageArgumentError = usage_query.UsageQueryError


def run(
    *,
    db: str | None = None,
    config_path: str | None = None,
    by: str = DEFAULT_BY,
    since: str | None = None,
    until: str | None = None,
    form: str = "table",
    out: TextIO | None = None,
    err: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
    now: float | None = None,
) -> int:
    """`byok usage`: 0 with the rows printed (or none recorded yet), 2 with
    the reason they could not be.  A ConfigError from the config's [usage]
    table is raised (the command line says it as it says others)."""
    out = out or sys.stdout
    err = err or sys.stderr
    env = os.environ if environ is None else environ
    now = time.time() if now is None else now
    try:
        groups = parse_by(by)
        start = start_of_month(now) if since is None else parse_when(since, now, "--since")
        end = None if until is None else parse_when(until, now, "--until")
        if end is not None and end <= start:
            raise UsageArgumentError(f"--until {until} is not after --since: nothing between")
        if form not in FORMATS:
            raise UsageArgumentError(f"--format {form}: expected one of {', '.join(FORMATS)}")
    except UsageArgumentError as error:
        print(f"byok usage: {error}", file=err)
        return 2
    path = locate(db, config_path, env)
    if not os.path.exists(path):
        print(f"byok usage: no usage recorded yet at {path}", file=err)
        if form != "table":  # a script still reads a document, an empty one
            _write(form, _columns(groups), [], out)
        return 0
    try:
        rows = read_rows(path, since=start, until=end, by=groups)
    except UsageBookError as error:
        print(f"byok usage: {error}", file=err)
        return 2
    if form == "table":
        _table(groups, rows, path, start, end, out)
    else:
        _write(form, _columns(groups), rows, out)
    return 0


def locate(db: str | None, config_path: str | None, environ: Mapping[str, str]) -> str:
    """The ledger's path: --db, BYOK_USAGE_DB, the config's [usage] path, the default."""
    if db:
        return db
    if environ.get(DB_ENV, "").strip():
        return environ[DB_ENV].strip()
    if config_path:
        return read_usage(config_path).path
    return default_usage_path(environ)


def _columns(groups: Sequence[str]) -> list[str]:
    """The output's columns: those of the groups (as read_rows names them), then MEASURES."""
    names = [column for name in groups for column, _ in GROUPS[name]]
    return list(dict.fromkeys([*names, *MEASURES]))


def _write(form: str, columns: list[str], rows: list[dict[str, Any]], out: TextIO) -> None:
    """`rows` as CSV (a header row first) or a JSON list of objects."""
    exact = [{**row, "cost": round(row["cost"], COST_DECIMALS)} for row in rows]
    if form == "json":
        json.dump(exact, out, indent=2)
        out.write("\n")
        return
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(exact)


def _table(
    groups: Sequence[str],
    rows: list[dict[str, Any]],
    path: str,
    since: float,
    until: float | None,
    out: TextIO,
) -> None:
    """`rows` in aligned columns with a totals line; coloured on a terminal,
    plain (unwrapped, no codes) in a pipe or a file."""
    # whole hours are counted: from the one that holds `since` to the end of
    # the one that holds the moment before `until`
    end = "now" if until is None else _utc(until + (-until) % HOUR)
    period = f"from {_utc(since - since % HOUR)} to {end} (UTC)"
    print(f"usage {period}, {path}", file=out)
    if not rows:
        print("(no usage in this period)", file=out)
        return
    columns = _columns(groups)
    table = Table(
        box=None,
        pad_edge=False,
        header_style="bold",
        show_footer=True,
        footer_style="bold",
    )
    totals = {name: sum(row[name] for row in rows) for name in MEASURES}
    for n, name in enumerate(columns):
        if name in MEASURES:
            table.add_column(
                HEADINGS.get(name, name), justify="right", footer=_number(name, totals)
            )
        else:
            table.add_column(name, footer="total" if n == 0 else "")
    for row in rows:
        table.add_row(
            *(_number(name, row) if name in MEASURES else str(row[name]) for name in columns)
        )
    if _isatty(out):
        Console(file=out, highlight=False).print(table)
    else:
        print(plain(table), file=out)


def _number(name: str, row: Mapping[str, Any]) -> str:
    return f"{row[name]:,.4f}" if name == "cost" else f"{row[name]:,}"


def _utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
