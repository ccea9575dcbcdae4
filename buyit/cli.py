"""The `buyit` command: run the stack, mint tokens."""

from __future__ import annotations

import signal
import time
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


if __name__ == "__main__":
    app()
