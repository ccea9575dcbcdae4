"""Fulfillment: sellers process and ship their shipments; the carrier (or an admin) confirms delivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from buyit.settings import get_settings
from ingest_api.auth import SellerOrAdmin, current_actor
from ingest_api.commands import checked_id, command_id, execute, now
from ingest_api.errors import ApiError, not_found, unauthorized
from ingest_api.models import Tracking
from ingest_api.reads import json_value
from state.common import Actor
from state.order import DeliverShipment, ProcessShipment, ShipShipment

router = APIRouter(prefix="/api/shipments", tags=["fulfillment"])

SHIPMENT_STATUSES = ("PENDING", "PROCESSING", "SHIPPED", "DELIVERED", "CANCELLED")
SIGNATURE_TOLERANCE_S = 300
CARRIER = Actor(user_id="carrier", role="CARRIER")


async def _move(request: Request, order_id: str, shipment_id: str, command) -> JSONResponse:
    """Send a shipment move to its order and answer with the shipment as it now stands."""
    def shipment(order: dict) -> dict:
        moved = next(s for s in order["shipments"] if s["shipmentId"] == shipment_id)
        return {**moved, "orderId": order_id, "orderStatus": order["status"]}
    return await execute(request, "order", order_id, command, shape=shipment)


async def _visible_shipment(request: Request, shipment_id: str, actor: Actor) -> dict:
    """The shipment's view row if the caller may see it: its seller once paid, or an admin."""
    checked_id(shipment_id, "shipment")
    row = await request.app.state.reads.one("SELECT * FROM shipments WHERE shipment_id = %s", shipment_id)
    if row is None or not (actor.is_admin or (row["seller_id"] == actor.user_id and not row["provisional"])):
        raise not_found("shipment")
    return row


@router.get("")
async def list_shipments(request: Request, actor: SellerOrAdmin, status: str | None = None,
                         sellerId: Annotated[str | None, Query(max_length=128)] = None,
                         orderId: Annotated[str | None, Query(max_length=128)] = None,
                         limit: Annotated[int, Query(ge=1, le=100)] = 20,
                         cursor: Annotated[str | None, Query(max_length=500)] = None):
    """A seller's paid shipments (an admin's: all, or by `sellerId`), optionally by status and order."""
    where, params = [], []
    if not actor.is_admin:
        where += ["seller_id = %s", "NOT provisional"]
        params.append(actor.user_id)
    elif sellerId is not None:
        where.append("seller_id = %s")
        params.append(checked_id(sellerId, "seller"))
    if orderId is not None:
        where.append("order_id = %s")
        params.append(checked_id(orderId, "order"))
    if status is not None:
        if status not in SHIPMENT_STATUSES:
            raise ApiError(422, "invalid", f"status must be one of {', '.join(SHIPMENT_STATUSES)}")
        where.append("status = %s")
        params.append(status)
    rows, next_cursor = await request.app.state.reads.page(" AND ".join(where), params, "shipment_id", cursor,
                                                           limit, "SELECT body, shipment_id FROM shipments")
    return {"items": [json_value(r["body"]) for r in rows], "nextCursor": next_cursor}


@router.put("/{shipment_id}/process")
async def process(request: Request, shipment_id: str, actor: SellerOrAdmin):
    """PENDING → PROCESSING."""
    row = await _visible_shipment(request, shipment_id, actor)
    command = ProcessShipment(command_id=command_id(request, actor), now=now(), actor=actor,
                              order_id=row["order_id"], shipment_id=shipment_id)
    return await _move(request, row["order_id"], shipment_id, command)


@router.put("/{shipment_id}/ship")
async def ship(request: Request, shipment_id: str, actor: SellerOrAdmin, body: Tracking):
    """PROCESSING → SHIPPED, with the carrier's tracking number."""
    row = await _visible_shipment(request, shipment_id, actor)
    command = ShipShipment(command_id=command_id(request, actor), now=now(), actor=actor, order_id=row["order_id"],
                           shipment_id=shipment_id, tracking_number=body.tracking_number, carrier=body.carrier)
    return await _move(request, row["order_id"], shipment_id, command)


def carrier_signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over "{timestamp}.{body}", hex: what the carrier sends in `X-Carrier-Signature`."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _signed_shipment(body: bytes) -> str | None:
    """The `shipmentId` the carrier signed, if the body is a JSON object naming one."""
    try:
        signed = json.loads(body)
    except ValueError:
        return None
    return signed.get("shipmentId") if isinstance(signed, dict) else None


@router.post("/{shipment_id}/delivered")
async def delivered(request: Request, shipment_id: str):
    """SHIPPED → DELIVERED: the carrier's signed webhook (`X-Carrier-Timestamp`, `X-Carrier-Signature`) or an admin."""
    body = await request.body()
    timestamp, signature = request.headers.get("x-carrier-timestamp"), request.headers.get("x-carrier-signature")
    if signature is not None or timestamp is not None:
        if not timestamp or not signature or not timestamp.isdigit():
            raise unauthorized("carrier signature headers are incomplete")
        if abs(time.time() - int(timestamp)) > SIGNATURE_TOLERANCE_S:
            raise unauthorized("the carrier signature is too old (or from the future)")
        expected = carrier_signature(get_settings().carrier_webhook_secret, timestamp, body)
        if not hmac.compare_digest(expected, signature):
            raise unauthorized("the carrier signature does not verify")
        if _signed_shipment(body) != shipment_id:  # else a captured delivery could be replayed on another path
            raise unauthorized("the signed body is not about this shipment (its shipmentId must equal the path's)")
        actor = CARRIER
        cid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"carrier:{shipment_id}:{signature}"))
    else:
        actor = await current_actor(request)
        if not actor.is_admin:
            raise ApiError(403, "forbidden", "only the carrier or an admin may confirm a delivery")
        cid = command_id(request, actor)
    checked_id(shipment_id, "shipment")
    row = await request.app.state.reads.one("SELECT order_id FROM shipments WHERE shipment_id = %s", shipment_id)
    if row is None:
        raise not_found("shipment")
    command = DeliverShipment(command_id=cid, now=now(), actor=actor, order_id=row["order_id"],
                              shipment_id=shipment_id)
    return await _move(request, row["order_id"], shipment_id, command)
