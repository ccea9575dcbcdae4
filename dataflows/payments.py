"""The payments worker: the one place that calls Stripe for an order, driven by events.

It reads `order.events` and `payment.events`. An order whose stock is all allocated gets its
PaymentIntent (idempotency key from the payment id), attached to the order with `AttachPayment`;
if Stripe refuses for good, the order is cancelled (`payment_creation_failed`). An order cancelled
for any reason (payment failure, allocation expiry, its buyer) gets its intent cancelled, and so
does an intent the order did not take. Money captured for a cancelled order is refunded and
reported back as `SettleRefund`. The calls happen here, outside any replayable decision, and each
is safe to repeat, so a recovery that replays a few events changes nothing at Stripe. Transient
Stripe errors are retried with backoff for minutes; other refusals go to `dead.letters`.

The checkout request waits for the answer to `payment_attempt(payment_id)`, the correlation id of
the attach (or of the cancellation when the intent could not be made).
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
from state.common import derived_id, per_claim
from state.order import AttachPayment, CancelOrder
from state.payment import SettleRefund
from state.stripe_actions import CancelIntent, CreateIntent, RefundCapture, owed_to_stripe, payment_attempt

log = logging.getLogger(__name__)
TOPICS = (events_topic("order"), events_topic("payment"))
Output = tuple[str, str, bytes]  # (topic, key, value)


def parse(record: Record) -> tuple[str, tuple]:
    """("ok", (record, the Stripe call it calls for, or None for most events)) or ("dead", output)."""
    if record.error:
        return ("dead", dead_letter("read_error", record.topic, record.key, record.value, record.error))
    try:
        return ("ok", (record, owed_to_stripe(decode(record.value).message())))
    except ValueError as err:
        return ("dead", dead_letter("undecodable_event", record.topic, record.key, record.value, str(err)))


def _patiently(call):
    """On top of the gateway's quick retries: Stripe down for a while holds the worker (in order) for up
    to `BUYIT_STRIPE_PATIENCE_S` before the call is given up (dead-lettered, or the order cancelled)."""
    from buyit.settings import get_settings
    patience = stop_after_delay(get_settings().buyit_stripe_patience_s)
    return retry(retry=retry_if_exception_type(TRANSIENT), stop=patience, wait=wait_exponential(multiplier=1, max=15),
                 reraise=True)(call)


def _command(aggregate: str, key: str, command, correlation_id: str | None = None) -> Output:
    return (commands_topic(aggregate), key, command_envelope(command, key, correlation_id).encode())


def _create(gateway: StripeGateway, action: CreateIntent) -> Output:
    attempt = payment_attempt(action.payment_id)
    try:
        intent_id = _patiently(gateway.create_intent)(action.order_id, action.payment_id, action.amount_cents,
                                                      action.currency)
    except stripe.StripeError as err:  # refused for good, or down for minutes: the buyer must not wait on it
        log.warning("no PaymentIntent for order %s: %s", action.order_id, err)
        cancel = CancelOrder(command_id=derived_id(action.payment_id, "payment-creation-failed"),
                             now=datetime.now(UTC), order_id=action.order_id, reason="payment_creation_failed")
        return _command("order", action.order_id, cancel, attempt)
    attach = AttachPayment(command_id=derived_id(action.payment_id, f"attach/{intent_id}"), now=datetime.now(UTC),
                           order_id=action.order_id, payment_id=action.payment_id, intent_id=intent_id)
    return _command("order", action.order_id, attach, attempt)


Action = CreateIntent | CancelIntent | RefundCapture


def perform(gateway: StripeGateway, record: Record, action: Action) -> list[Output]:
    """Make the call; the outputs are the commands it leads to, or a dead letter."""
    try:
        match action:
            case CreateIntent():
                return [_create(gateway, action)]
            case CancelIntent():
                status = _patiently(gateway.cancel_intent)(action.intent_id)
                log.info("PaymentIntent %s of cancelled order %s: %s", action.intent_id, action.order_id, status)
                return []
            case RefundCapture():
                refund_id = _patiently(gateway.refund)(action.intent_id, action.amount_cents, action.payment_id,
                                                       action.refund_key)
                settle_id = derived_id(action.payment_id, per_claim("settle-refund", action.refund_key))
                settle = SettleRefund(command_id=settle_id, now=datetime.now(UTC), payment_id=action.payment_id,
                                      refund_id=refund_id, refund_key=action.refund_key)
                return [_command("payment", action.payment_id, settle)]
    except stripe.StripeError as err:
        return [dead_letter("stripe_refused", record.topic, record.key, record.value, f"{type(err).__name__}: {err}")]
    return []


def build_flow(source, sink, gateway, to_message=lambda output: output) -> Dataflow:
    """Events from `source` (Records) in; commands and dead letters out to `sink`."""
    flow = Dataflow("buyit_payments")
    records = op.input("read_events", flow, source)
    parsed = op.map("parse", records, parse)
    branch = op.branch("split_poison", parsed, lambda p: p[0] == "ok")
    due = op.filter("owed_to_stripe", op.map("unwrap", branch.trues, lambda p: p[1]), lambda r: r[1] is not None)
    called = op.flat_map("call_stripe", due, lambda r: perform(gateway, *r))
    poison = op.map("unwrap_poison", branch.falses, lambda p: p[1])
    op.output("write", op.map("to_message", op.merge("all_outputs", called, poison), to_message), sink)
    return flow


@cache
def _gateway() -> StripeGateway:
    from buyit.settings import get_settings
    return StripeGateway(get_settings())


def kafka_flow() -> Dataflow:
    """The production worker: order and payment events from Kafka, commands back to Kafka."""
    return build_flow(kafka_source(list(TOPICS)), kafka_sink(), _gateway(),
                      lambda output: keyed_sink_message((output[1] if output[0] != DEAD_LETTERS else "", output)))
