"""The sagas: what one aggregate's events ask of the others.

Each aggregate decides alone and knows nothing of the others; here an event that concerns another
aggregate becomes a command for it, as (aggregate name, key, command). This is the one module that
knows them all, so the aggregates import nothing of one another. Every command's id is derived from
the event (`stamp.id`), so reacting to the same event twice asks the same thing twice, and the
second is known as a duplicate.
"""

from __future__ import annotations

from state import cart, catalog, inventory, ledger, order, payment
from state.common import Event, Retire, Retired, Stamp


def after_catalog(event: Event, state: catalog.Product, stamp: Stamp) -> list:
    """A new product gets its stock record, every quantity zero."""
    if isinstance(event, catalog.ProductCreated):
        return [("inventory", event.product_id, inventory.CreateStock(
            command_id=stamp.id("create-stock"), now=stamp.now, product_id=event.product_id,
            seller_id=event.seller_id, sku=event.sku))]
    return []


def after_inventory(event: Event, state: inventory.Stock, stamp: Stamp) -> list:
    """Tell the cart (by buyer) or the order what became of its units."""
    match event:
        case inventory.StockReserved():
            return [("cart", event.buyer_id, cart.ConfirmReservation(
                command_id=stamp.id("confirm"), now=stamp.now, buyer_id=event.buyer_id,
                reservation_id=event.reservation_id, quantity=event.quantity, seq=event.seq))]
        case inventory.ReservationRefused():
            return [("cart", event.buyer_id, cart.RefuseReservation(
                command_id=stamp.id("refuse"), now=stamp.now, buyer_id=event.buyer_id,
                reservation_id=event.reservation_id, seq=event.seq))]
        case inventory.ReservationExpired() if event.kind == inventory.SOFT:
            return [("cart", event.buyer_id, cart.LapseReservation(
                command_id=stamp.id("lapse"), now=stamp.now, buyer_id=event.buyer_id,
                reservation_id=event.reservation_id, seq=event.seq))]
        case inventory.ReservationExpired():  # an unpaid order's hold ran out
            return [("order", event.holder_id, order.CancelOrder(
                command_id=stamp.id("cancel-order"), now=stamp.now, order_id=event.holder_id,
                reason="payment_timeout"))]
        case inventory.StockAllocated():
            return [("order", event.order_id, order.ConfirmAllocation(
                command_id=stamp.id("allocated"), now=stamp.now, order_id=event.order_id,
                reservation_id=event.reservation_id))]
        case inventory.SaleShortfall():  # the buyer paid for units that are gone: the order refunds them
            return [("order", event.order_id, order.RecordShortfall(
                command_id=stamp.id("shortfall"), now=stamp.now, order_id=event.order_id,
                product_id=event.product_id, quantity=event.quantity))]
        case inventory.AllocationRefused():
            return [("order", event.order_id, order.FailAllocation(
                command_id=stamp.id("allocation-failed"), now=stamp.now, order_id=event.order_id,
                reservation_id=event.reservation_id, product_id=event.product_id, available=event.available))]
    return []


def after_cart(event: Event, state: cart.Cart, stamp: Stamp) -> list:
    """Ask inventory to reserve or release, and an order to be placed (or, a checkout given up, cancelled)."""
    match event:
        case cart.CartItemRequested():
            return [("inventory", event.item.product_id, inventory.ReserveStock(
                command_id=stamp.id("reserve"), now=stamp.now, product_id=event.item.product_id,
                reservation_id=event.item.reservation_id, cart_id=event.cart_id, buyer_id=state.buyer_id,
                quantity=event.quantity, mode=event.mode, expires_at=event.reservation_expires_at, seq=event.seq))]
        case cart.CartItemRemoved() if event.reason == "removed":
            return [_release(event.product_id, event.reservation_id, "removed", event.seq, stamp)]
        case cart.CartAbandoned():
            gave_up = [("order", event.order_id, order.CancelOrder(
                command_id=stamp.id("cancel-order"), now=stamp.now, order_id=event.order_id,
                reason="checkout_timed_out"))] if event.order_id else []
            return [*[_release(i.product_id, i.reservation_id, event.status.lower(), event.seq, stamp)
                      for i in event.items], *gave_up]
        case cart.CartCheckedOut():
            items = tuple(order.OrderItem(item_id=i.item_id, product_id=i.product_id, sku=i.sku,
                                          seller_id=i.seller_id, quantity=i.quantity, price_cents=i.price_cents,
                                          currency=i.currency, reservation_id=i.reservation_id)
                          for i in event.items)
            return [("order", event.order_id, order.PlaceOrder(
                command_id=stamp.id("place-order"), now=stamp.now, order_id=event.order_id,
                buyer_id=event.buyer_id, cart_id=event.cart_id, payment_id=event.payment_id, items=items,
                allocation_ttl_s=event.allocation_ttl_s, fee_bps=event.fee_bps))]
    return []


def _release(product_id: str, reservation_id: str, reason: str, seq: int, stamp: Stamp):
    return ("inventory", product_id, inventory.ReleaseReservation(
        command_id=stamp.id(f"release/{reservation_id}"), now=stamp.now, product_id=product_id,
        reservation_id=reservation_id, reason=reason, seq=seq))


def after_order(event: Event, state: order.Order, stamp: Stamp) -> list:
    """Allocate, release, sell, post to the ledger, close the cart."""
    match event:
        case order.OrderPlaced():
            return [("inventory", i.product_id, inventory.AllocateStock(
                command_id=stamp.id(f"allocate/{i.reservation_id}"), now=stamp.now, product_id=i.product_id,
                reservation_id=i.reservation_id, order_id=event.order_id, quantity=i.quantity,
                expires_at=event.expires_at)) for i in event.items]
        case order.OrderPaymentAttached():
            return [("payment", event.payment_id, payment.OpenPayment(
                command_id=stamp.id("open-payment"), now=stamp.now, payment_id=event.payment_id,
                order_id=state.order_id, buyer_id=state.buyer_id, amount_cents=state.total_cents,
                currency=state.currency, intent_id=event.intent_id))]
        case order.OrderConfirmed():
            return [*[("inventory", i.product_id, inventory.ConfirmSale(
                        command_id=stamp.id(f"sell/{i.reservation_id}"), now=stamp.now, product_id=i.product_id,
                        reservation_id=i.reservation_id, order_id=state.order_id, quantity=i.quantity))
                      for i in state.items],
                    ("ledger", event.payment_id, ledger.PostSale(
                        command_id=stamp.id("post-sale"), now=stamp.now, payment_id=event.payment_id,
                        order_id=state.order_id, currency=state.currency, total_cents=state.total_cents,
                        seller_subtotals=state.seller_subtotals(), fee_bps=state.fee_bps)),
                    ("cart", state.buyer_id, cart.CloseCart(
                        command_id=stamp.id("close-cart"), now=stamp.now, buyer_id=state.buyer_id,
                        cart_id=state.cart_id, order_id=state.order_id, status=cart.COMPLETED))]
        case order.OrderCancelled():
            return [*[("inventory", i.product_id, inventory.ReleaseReservation(
                        command_id=stamp.id(f"release/{i.reservation_id}"), now=stamp.now,
                        product_id=i.product_id, reservation_id=i.reservation_id, reason=event.reason,
                        order_id=state.order_id))
                      for i in state.items],
                    ("cart", state.buyer_id, cart.CloseCart(
                        command_id=stamp.id("close-cart"), now=stamp.now, buyer_id=state.buyer_id,
                        cart_id=state.cart_id, order_id=state.order_id, status=cart.ABANDONED)),
                    *([("payment", state.payment_id, payment.CancelPayment(
                        command_id=stamp.id("cancel-payment"), now=stamp.now, payment_id=state.payment_id,
                        reason=event.reason))] if state.intent_id else [])]
        case order.OrderShortfall():
            return [("payment", event.payment_id, payment.FlagForRefund(
                command_id=stamp.id("flag-shortfall"), now=stamp.now, payment_id=event.payment_id,
                reason="sale_shortfall", amount_cents=event.amount_cents, refund_key=f"shortfall/{event.product_id}",
                seller_id=event.seller_id, fee_bps=state.fee_bps))]
        case order.PaymentAfterCancellation():
            return [("payment", event.payment_id, payment.FlagForRefund(
                command_id=stamp.id("flag-refund"), now=stamp.now, payment_id=event.payment_id,
                reason="order_cancelled"))]
        case Retired():  # its payment retires with it (if nothing of it is under way); the rest forgets it
            return [*[("inventory", i.product_id, inventory.ForgetReservation(
                        command_id=stamp.id(f"forget/{i.reservation_id}"), now=stamp.now, product_id=i.product_id,
                        reservation_id=i.reservation_id)) for i in state.items],
                    ("cart", state.buyer_id, cart.ForgetOrder(command_id=stamp.id("forget-order"), now=stamp.now,
                                                              buyer_id=state.buyer_id, order_id=state.order_id)),
                    *([("payment", state.payment_id, Retire(command_id=stamp.id("retire-payment"), now=stamp.now,
                                                            by_owner=True))] if state.intent_id else [])]
    return []


def after_payment(event: Event, state: payment.Payment, stamp: Stamp) -> list:
    """Post what the money did to the ledger, and tell the order it was paid (or not)."""
    match event:
        case payment.PaymentFlaggedForRefund():
            return [("ledger", event.payment_id, ledger.PostRefundOwed(
                command_id=stamp.id("post-refund-owed"), now=stamp.now, payment_id=event.payment_id,
                order_id=event.order_id, currency=state.currency, amount_cents=event.amount_cents,
                refund_key=event.refund_key, seller_id=event.seller_id, fee_bps=event.fee_bps))]
        case payment.PaymentRefunded():
            return [("ledger", event.payment_id, ledger.PostRefund(
                command_id=stamp.id("post-refund"), now=stamp.now, payment_id=event.payment_id,
                order_id=event.order_id, currency=event.currency, amount_cents=event.amount_cents,
                refund_id=event.refund_id, refund_key=event.refund_key))]
        case Retired() if state.captured_at is not None:  # money came in: its ledger retires with it
            return [("ledger", state.payment_id, Retire(command_id=stamp.id("retire-ledger"), now=stamp.now,
                                                        by_owner=True))]
        case payment.PaymentCaptured():
            return [("order", event.order_id, order.ConfirmOrder(
                command_id=stamp.id("confirm-order"), now=stamp.now, order_id=event.order_id,
                payment_id=event.payment_id))]
        case payment.PaymentFailed():
            return [("order", event.order_id, order.CancelOrder(
                command_id=stamp.id("cancel-order"), now=stamp.now, order_id=event.order_id,
                reason="payment_failed"))]
    return []


# aggregate name -> its reaction; the others' events ask nothing of anyone
REACTIONS = {"catalog": after_catalog, "inventory": after_inventory, "cart": after_cart, "order": after_order,
             "payment": after_payment}
