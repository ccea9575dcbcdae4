"""The FastAPI application: wiring of bus, reads, images and routes."""

from __future__ import annotations

from collections import deque
from contextlib import asynccontextmanager

import redis.asyncio
from fastapi import FastAPI

from buyit.settings import get_settings
from ingest_api import auth, errors
from ingest_api.bus import CommandBus
from ingest_api.images import image_store
from ingest_api.limits import MULTIPART_OVERHEAD, BodyLimit
from ingest_api.reads import Reads
from ingest_api.stock_feed import StockFeeds
from ingest_api.routes import (analytics, cart, catalog, checkout, dashboard, inventory, ledger, orders, shipments,
                               system, users, windows)
from sinks.stripe_gateway import StripeGateway


JSON_BODY_BYTES = 1024 * 1024  # every request but an image upload is a small JSON document


def create_app() -> FastAPI:
    """Build the app from the environment's settings."""
    settings = get_settings()
    settings.refuse_default_secrets()  # also where no `buyit up` runs first (compose, a platform)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.bus = CommandBus(settings.brokers, settings.buyit_command_wait_s)
        app.state.bus.start()
        app.state.reads = Reads(settings.database_url, settings.buyit_cursor_secret)
        app.state.health_pings = deque(maxlen=1000)  # (command id, answered at): see /health's projection
        await app.state.reads.open()
        app.state.images = image_store(settings)
        app.state.stock_feeds = StockFeeds(app.state.reads)
        app.state.stripe = StripeGateway(settings)
        app.state.redis = redis.asyncio.Redis.from_url(settings.redis_url)
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await app.state.reads.close()
            app.state.bus.close()

    app = FastAPI(title="BuyIt", version="0.1.0", lifespan=lifespan,
                  description="An open marketplace backend: commands in through Kafka, views out of Postgres.")
    errors.install(app, caller_first=auth.caller_first)
    errors.document(app)
    image_limit = settings.buyit_max_image_bytes + MULTIPART_OVERHEAD
    app.add_middleware(BodyLimit, default_bytes=JSON_BODY_BYTES, per_path={"/api/catalog/images/upload": image_limit})
    for module in (system, users, catalog, inventory, cart, checkout, orders, shipments, ledger, analytics, windows,
                   dashboard):
        app.include_router(module.router)
    app.include_router(analytics.named)
    return app
