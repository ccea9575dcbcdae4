"""The `buyit` command: run the stack, mint tokens, query the lake."""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from buyit.processes import PortTaken
from buyit.settings import get_settings

app = typer.Typer(no_args_is_help=True, help="BuyIt marketplace backend.")


def _say(message: str, err: bool = False) -> None:
    """Print, unless the terminal is gone (a closed tmux pane): shutting down matters more than saying so."""
    try:
        typer.echo(message, err=err)
    except OSError:
        pass


def _run(port: int | None, demo: bool) -> None:
    from buyit.stack import Stack
    settings = get_settings()
    if port:
        settings = settings.model_copy(update={"buyit_api_port": port})
    stack = Stack(settings)
    stopping, up = False, False

    def on_signal(signum, frame):
        # Ctrl-C, SIGTERM and a closed terminal (SIGHUP) all stop everything; while starting, abort the start
        # (Stack.start stops what it began); a second signal never interrupts the shutdown.
        nonlocal stopping
        if stopping:
            return
        stopping = True
        if not up:
            raise KeyboardInterrupt
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    _say("starting BuyIt (broker, Postgres, Valkey, localstripe, dataflows, API) ...")
    try:
        stack.start()
    except KeyboardInterrupt:
        _say("stopped before it was up.")
        raise typer.Exit(130)
    except (PortTaken, RuntimeError) as err:
        _say(f"cannot start: {err}", err=True)
        raise typer.Exit(1)
    up = True
    url = settings.public_url
    _say(f"BuyIt is up: API {url}  docs {url}/docs  health {url}/health")
    _say(f"Kafka {','.join(stack.settings_for_children().brokers)}  data {stack.data}")
    _say("tokens: buyit token --user-id alice --role BUYER   (Ctrl-C stops everything)")
    shoppers = None
    try:
        if demo:
            from buyit.demo import Shoppers
            shoppers = Shoppers(url, settings, stripe_api_base=stack.env.get("STRIPE_API_BASE"))
            shoppers.start()
        while not stopping:
            stack.supervisor.check_alive()
            time.sleep(0.5)
    finally:
        stopping = True
        if shoppers:
            shoppers.stop()
        _say("stopping ...")
        stack.stop()
        _say("stopped.")


@app.command()
def up(port: Annotated[int | None, typer.Option(help="API port")] = None):
    """Start the whole system with embedded defaults; Ctrl-C or SIGTERM stops everything it started."""
    _run(port, demo=False)


@app.command()
def demo(port: Annotated[int | None, typer.Option(help="API port")] = None):
    """Like `up`, and drive simulated sellers and shoppers against it."""
    _run(port, demo=True)


@app.command()
def backfill(schema: Annotated[str, typer.Option(help="a fresh Postgres schema to rebuild the views in")]):
    """Replay every event topic from offset 0 into the views of a fresh schema, then stop.

    Point it at a running system (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL); the result should
    equal the live views, which is how a projection change is rolled out.
    """
    import re

    from bytewax.testing import run_main

    from buyit.bootstrap import create_schema
    from dataflows.project import backfill_flow
    settings = get_settings()
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise typer.BadParameter("schema: lower-case letters, digits and _")
    if not settings.database_url or not settings.kafka_bootstrap_servers:
        raise typer.BadParameter("set DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS of the running system")
    started = time.monotonic()
    create_schema(settings.database_url, schema)
    run_main(backfill_flow(settings.database_url, schema))
    typer.echo(f"backfilled schema {schema} in {time.monotonic() - started:.1f}s")


@app.command()
def token(user_id: Annotated[str, typer.Option("--user-id")],
          role: Annotated[str, typer.Option("--role", help="SELLER, BUYER or ADMIN")],
          ttl: Annotated[int, typer.Option(help="seconds")] = 3600):
    """Print a JWT signed by the local issuer."""
    from buyit.identity import mint
    if role not in ("SELLER", "BUYER", "ADMIN"):
        raise typer.BadParameter("role must be SELLER, BUYER or ADMIN")
    settings = get_settings()
    minted = mint(settings, user_id, role, ttl)
    typer.echo(minted)
    if role in ("SELLER", "ADMIN"):  # on stderr, so `TOKEN=$(buyit token ...)` still captures just the token
        # the token rides in the fragment: browsers never send it to the server or its logs
        typer.echo(f"dashboard: {settings.public_url}/dashboard#token={minted}", err=True)


def _lake(lake: Path | None) -> Path:
    from sinks.lake import lake_dir
    return lake or lake_dir(get_settings().buyit_data_dir)


def _when(text: str | None) -> datetime | None:
    """An ISO 8601 time from the command line; one without an offset is UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise typer.BadParameter(f"not an ISO 8601 time: {text}") from err
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _print_rows(names: list[str], rows: list[tuple], csv_out: bool) -> None:
    if csv_out:
        import csv
        import sys
        writer = csv.writer(sys.stdout)
        writer.writerow(names)
        writer.writerows(rows)
        return
    texts = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(n), *(len(r[i]) for r in texts)]) for i, n in enumerate(names)]
    typer.echo("  ".join(n.ljust(w) for n, w in zip(names, widths)))
    for row in texts:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)))


LakeOption = Annotated[Path | None, typer.Option(help="the lake folder (default: BUYIT_DATA_DIR/lake)")]


@app.command()
def analytics(name: Annotated[str, typer.Argument(help="the query, e.g. sales-by-seller (see --help)")],
              since: Annotated[str | None, typer.Option(help="ISO 8601, inclusive (UTC if no offset)")] = None,
              until: Annotated[str | None, typer.Option(help="ISO 8601, exclusive")] = None,
              bucket: Annotated[str, typer.Option(help="minute, hour or day")] = "day",
              seller: Annotated[str | None, typer.Option(help="only this seller's figures")] = None,
              limit: Annotated[int, typer.Option(help="rows of top-products")] = 10,
              csv: Annotated[bool, typer.Option("--csv", help="CSV instead of a table")] = False,
              lake: LakeOption = None):
    """Run a named analytics query over the lake: sales-by-seller, sales-by-product, sales-by-category,
    top-products, funnel, cart-abandonment, reservation-expiry, stock-turnover, platform-fees, refunds."""
    from sinks import lake_queries
    if name not in lake_queries.QUERIES:
        raise typer.BadParameter(f"unknown query {name!r}; known: {', '.join(lake_queries.QUERIES)}")
    try:
        rows = lake_queries.run(_lake(lake), name, _when(since), _when(until), bucket, seller, limit)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    names = list(rows[0]) if rows else []
    _print_rows(names, [tuple(r.values()) for r in rows], csv)


@app.command()
def sql(command: Annotated[str | None, typer.Option("-c", "--command", help="run this SQL and exit")] = None,
        csv: Annotated[bool, typer.Option("--csv", help="CSV instead of a table")] = False,
        lake: LakeOption = None):
    """A read-only DuckDB session over the lake, the fact tables as views (order_lines, order_events,
    reservations, stock_movements, payments, ledger_entries, cart_events, products).

    Without -c, reads SQL from stdin, one statement per `;`-terminated line group; writes are refused."""
    import sys

    import duckdb

    from sinks import lake_sql
    con = lake_sql.connect(_lake(lake))

    def run(text: str) -> bool:
        try:
            cursor = lake_sql.execute_read(con, text)
        except (lake_sql.ReadOnly, duckdb.Error) as err:
            typer.echo(f"error: {err}", err=True)
            return False
        if cursor.description:
            _print_rows([d[0] for d in cursor.description], cursor.fetchall(), csv)
        return True

    if command is not None:
        raise typer.Exit(0 if run(command) else 1)
    interactive = sys.stdin.isatty()
    pending = ""
    while True:
        if interactive:
            typer.echo("lake> " if not pending else "  ... ", nl=False)
        line = sys.stdin.readline()
        if not line:
            break
        pending += line
        if pending.strip() and pending.rstrip().endswith(";"):
            run(pending)
            pending = ""
    if pending.strip():
        run(pending)


if __name__ == "__main__":
    app()
