"""The payments worker: the one place that calls Stripe after checkout, driven by events.

It reads `order.events` and `payment.events`; an order cancelled for any reason (payment failure,
allocation expiry, its buyer) gets its PaymentIntent cancelled, and money captured for a cancelled
order is refunded, the refund then reported back as a `SettleRefund` command. The calls happen
here, outside any replayable decision, and each is safe to repeat (the gateway finds an earlier
refund of ours; cancelling twice is fine), so a recovery that replays a few events changes nothing
at Stripe. Transient Stripe errors are retried with backoff for minutes; what Stripe refuses for
good goes to `dead.letters` with the reason.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import cache

import stripe
from bytewax import operators as op
from bytewax.dataflow import Dataflow
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from buyit.envelope import DEAD_LETTERS, command_envelope, commands_topic, decode, events_topic
from dataflows.decider import dead_letter
from dataflows.kafka_io import Record, kafka_sink, kafka_source, keyed_sink_message
from sinks.stripe_gateway import TRANSIENT, StripeGateway
from state.common import derived_id
from state.payment import SettleRefund
from state.stripe_actions import CancelIntent, RefundCapture, owed_to_stripe

log = logging.getLogger(__name__)
TOPICS = (events_topic("order"), events_topic("payment"))
Output = tuple[str, str, bytes]  # (topic, key, value)


def parse(record: Record) -> tuple[Record, CancelIntent | RefundCapture | None] | Output:
    """The Stripe call a record calls for (None for most events), or a dead letter for a bad record."""
    if record.error:
        return dead_letter("read_error", record.topic, record.key, record.value, record.error)
    try:
        return (record, owed_to_stripe(decode(record.value).message()))
    except ValueError as err:
        return dead_letter("undecodable_event", record.topic, record.key, record.value, str(err))


# On top of the gateway's quick retries: Stripe down for a while holds the worker (in order) for
# up to five minutes before the call is dead-lettered, to be replayed from there.
_patiently = retry(retry=retry_if_exception_type(TRANSIENT), stop=stop_after_delay(300),
                   wait=wait_exponential(multiplier=1, max=15), reraise=True)


def perform(gateway: StripeGateway, item) -> list[Output]:
    """Make the call; the outputs are the commands it leads to, or a dead letter."""
    if not isinstance(item[0], Record):
        return [item]  # already a dead letter
    record, action = item
    try:
        match action:
            case CancelIntent():
                status = _patiently(gateway.cancel_intent)(action.intent_id)
                log.info("PaymentIntent %s of cancelled order %s: %s", action.intent_id, action.order_id, status)
                return []
            case RefundCapture():
                refund_id = _patiently(gateway.refund)(action.intent_id, action.amount_cents, action.payment_id)
                settle = SettleRefund(command_id=derived_id(action.payment_id, "settle-refund"), now=datetime.now(UTC),
                                      payment_id=action.payment_id, refund_id=refund_id)
                envelope = command_envelope(settle, action.payment_id)
                return [(commands_topic("payment"), action.payment_id, envelope.encode())]
    except stripe.StripeError as err:
        return [dead_letter("stripe_refused", record.topic, record.key, record.value, f"{type(err).__name__}: {err}")]
    return []


def build_flow(source, sink, gateway, to_message=lambda output: output) -> Dataflow:
    """Events from `source` (Records) in; commands and dead letters out to `sink`."""
    flow = Dataflow("buyit_payments")
    records = op.input("read_events", flow, source)
    parsed = op.map("parse", records, parse)
    due = op.filter("owed_to_stripe", parsed, lambda item: not isinstance(item[0], Record) or item[1] is not None)
    outputs = op.flat_map("call_stripe", due, lambda item: perform(gateway, item))
    op.output("write", op.map("to_message", outputs, to_message), sink)
    return flow


@cache
def _gateway() -> StripeGateway:
    from buyit.settings import get_settings
    return StripeGateway(get_settings())


def kafka_flow() -> Dataflow:
    """The production worker: order and payment events from Kafka, commands back to Kafka."""
    return build_flow(kafka_source(list(TOPICS)), kafka_sink(), _gateway(),
                      lambda output: keyed_sink_message((output[1] if output[0] != DEAD_LETTERS else "", output)))
