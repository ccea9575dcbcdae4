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
    _say("tokens: buyit token --user-id bob --role BUYER   (Ctrl-C stops everything)")
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


def _running_system(settings):
    """The settings with the running system's addresses: the configured ones, else those `buyit up` gives
    its embedded parts (so `buyit replay` beside a `buyit up` needs no configuration)."""
    return settings.model_copy(update={
        "database_url": settings.database_url or f"postgresql://postgres@127.0.0.1:{settings.buyit_pg_port}/postgres",
        "redis_url": settings.redis_url or f"redis://127.0.0.1:{settings.buyit_redis_port}/0"})


@app.command()
def replay(since: Annotated[str | None, typer.Option(help="rebuild what events since this ISO 8601 time changed "
                                                          "(UTC if no offset); every event is still folded")] = None,
           schema: Annotated[str | None, typer.Option(help="rebuild into this Postgres schema (created if missing) "
                                                           "instead of in place")] = None,
           verify: Annotated[bool, typer.Option("--verify", help="rebuild into a temporary schema, compare it with "
                                                "the live views row by row, exit 1 on any difference")] = False,
           lake: Annotated[bool, typer.Option(help="rebuild the Parquet lake too")] = True,
           progress: Annotated[bool, typer.Option(help="draw a progress bar on stderr")] = True):
    """Rebuild the read side (Postgres views, window tables, command results, the cart cache, the lake)
    from the event topics, then stop. Never decides, never calls Stripe or Cloudinary.

    In place by default: version-guarded upserts make replaying current views a no-op. --since limits what
    is written, not what is read (a view is its aggregate's whole history): the rows of aggregates with an
    event since TIME, window minutes from TIME's minute, lake rows of events since TIME.
    """
    import re

    from buyit import replay as replaying
    from sinks.lake import lake_dir
    settings = _running_system(get_settings())
    if schema is not None and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise typer.BadParameter("schema: lower-case letters, digits and _")
    if verify and (schema is not None or since is not None):
        raise typer.BadParameter("--verify rebuilds everything into a temporary schema: no --schema, no --since")
    if verify:
        verdict = replaying.verify(settings, progress=progress)
        for line in verdict.summary.lines():
            _say(line)
        for line in verdict.moved_on:
            _say(f"changed since the replay began (not compared): {line}")
        for line in verdict.differences:
            _say(f"DIFFERENT {line}")
        _say(f"verify: {verdict.rows_compared:,} rows compared, {len(verdict.differences)} differences"
             + (f", {len(verdict.moved_on)} rows changed since the replay began" if verdict.moved_on else ""))
        raise typer.Exit(1 if verdict.differences else 0)
    root = lake_dir(settings.buyit_data_dir)
    if schema is not None:
        root = root.with_name(f"lake-{schema}")
    summary = replaying.run(settings, schema, _when(since), root if lake else None, progress=progress)
    for line in summary.lines():
        _say(line)
    where = f"schema {schema}" if schema else "the live views"
    _say(f"rebuilt {where}" + (f", lake {root}" if lake else ""))


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
