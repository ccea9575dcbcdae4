"""What each event adds to the per-minute windows, and the read-side pace and stock-out figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pyrsistent import pmap

from state import analytics as a
from state import cart, inventory, order

AT = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)


def item(product_id, seller_id, quantity, price_cents):
    return order.OrderItem(item_id=f"i-{product_id}", product_id=product_id, sku=product_id, seller_id=seller_id,
                           quantity=quantity, price_cents=price_cents, currency="USD", reservation_id=f"r-{product_id}")


def facts(aggregate, event, before=None, after=None):
    return {(f.key, f.counts) for f in a.facts_of(aggregate, before, after, event, AT)}


STOCK = inventory.Stock(product_id="p1", seller_id="s1")
HELD = inventory.Reservation("r1", "cart-1", 2, inventory.SOFT, AT)
PAID = order.Order(order_id="o1", items=(item("p1", "s1", 2, 500), item("p2", "s1", 1, 300), item("p3", "s2", 4, 100)))
SALE = (("units_sold",), ("gross_cents",), ("orders",))


class TestFacts:
    def test_a_confirmed_order_counts_units_cents_and_one_order_per_product_and_seller(self):
        got = facts("order", order.OrderConfirmed(order_id="o1", payment_id="pay", confirmed_at=AT), after=PAID)
        sale = lambda u, c: (("units_sold", u), ("gross_cents", c), ("orders", 1))  # noqa: E731
        assert got == {("sales/s1/p1", sale(2, 1000)), ("sales/s1/p2", sale(1, 300)), ("sales/s1/", sale(3, 1300)),
                       ("sales/s2/p3", sale(4, 400)), ("sales/s2/", sale(4, 400))}

    def test_a_shortfall_takes_units_and_cents_back(self):
        event = order.OrderShortfall(order_id="o1", payment_id="pay", product_id="p1", seller_id="s1", quantity=1,
                                     amount_cents=500, at=AT)
        back = (("units_sold", -1), ("gross_cents", -500))
        assert facts("order", event, after=PAID) == {("sales/s1/p1", back), ("sales/s1/", back)}

    @pytest.mark.parametrize("before, count", [
        pytest.param(STOCK, 1, id="a-new-reservation-is-made"),
        pytest.param(STOCK.__class__(product_id="p1", seller_id="s1", reservations=pmap({"r1": HELD})), 0,
                     id="raising-a-held-one-is-not-a-new-reservation"),
    ])
    def test_reservations_made(self, before, count):
        event = inventory.StockReserved(product_id="p1", reservation_id="r1", cart_id="cart-1", buyer_id="b",
                                        quantity=3, expires_at=AT, available=0)
        got = facts("inventory", event, before, STOCK)
        made = (("reservations_made", 1),)
        assert got == ({("sales/s1/p1", made), ("sales/s1/", made)} if count else set())

    @pytest.mark.parametrize("event, name", [
        pytest.param(inventory.ReservationExpired(product_id="p1", reservation_id="r1", holder_id="c", buyer_id="b",
                                                  quantity=1, kind=inventory.SOFT, available=1),
                     "reservations_expired", id="expired"),
        pytest.param(inventory.ReservationFulfilled(product_id="p1", reservation_id="r1", order_id="o1", quantity=1),
                     "reservations_converted", id="converted-by-a-sale"),
    ])
    def test_reservation_outcomes(self, event, name):
        assert facts("inventory", event, STOCK, STOCK) == {("sales/s1/p1", ((name, 1),)), ("sales/s1/", ((name, 1),))}

    @pytest.mark.parametrize("event, step", [
        pytest.param(cart.CartCreated(cart_id="c", buyer_id="b", created_at=AT), "carts_started", id="started"),
        pytest.param(cart.CartItemConfirmed(cart_id="c", item_id="i", product_id="p", quantity=1), "items_added",
                     id="item-added"),
        pytest.param(cart.CartCompleted(cart_id="c", order_id="o", at=AT), "paid", id="paid"),
        pytest.param(cart.CartAbandoned(cart_id="c", buyer_id="b", status="EXPIRED", items=(), at=AT), "abandoned",
                     id="abandoned"),
    ])
    def test_the_cart_funnel(self, event, step):
        assert facts("cart", event) == {("funnel//", ((step, 1),))}

    def test_other_events_count_nothing(self):
        event = inventory.StockUpdated(product_id="p1", total_quantity=3, low_stock_threshold=5,
                                       levels=inventory.Levels(3, 3, 0, 0, 0))
        assert facts("inventory", event, STOCK, STOCK) == set()


class TestWindows:
    def test_event_time_is_utc_and_naive_means_utc(self):
        assert a.event_time("2026-03-01T12:00:30") == AT
        assert a.event_time("2026-03-01T13:00:30+01:00") == AT

    def test_windows_are_whole_minutes(self):
        wid = a.window_id_of(AT)
        assert a.window_start(wid) == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        assert a.window_id_of(a.window_start(wid) + timedelta(seconds=59.999)) == wid

    def test_counts_add_up_without_sharing_state(self):
        fact = a.Fact(AT, a.SALES, (("units_sold", 2),), "s1", "p1")
        first = a.add(None, fact)
        second = a.add(first, fact)
        assert first["units_sold"] == 2 and second["units_sold"] == 4 and second["orders"] == 0
        assert a.merged(first, second)["units_sold"] == 6


class TestPace:
    MINUTE0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def test_velocity_over_finished_minutes_and_the_minute_so_far(self):
        minutes = [(self.MINUTE0 - timedelta(minutes=m), 3) for m in range(20)]  # 3 a minute for 20 minutes
        now = self.MINUTE0 + timedelta(seconds=30)
        # 15 finished minutes and this one: 16 × 3 units over 15.5 minutes
        assert a.velocity(minutes, now, span=15) == pytest.approx(48 / 15.5)

    def test_nothing_sold_is_no_pace(self):
        assert a.velocity([], self.MINUTE0) == 0.0

    @pytest.mark.parametrize("available, pace, expected", [
        pytest.param(10, 2.0, timedelta(minutes=5), id="ten-units-at-two-a-minute"),
        pytest.param(0, 2.0, timedelta(0), id="already-out"),
        pytest.param(10, 0.0, None, id="nothing-sells-never-runs-out"),
    ])
    def test_stock_out(self, available, pace, expected):
        got = a.stock_out_at(available, pace, self.MINUTE0)
        assert got == (None if expected is None else self.MINUTE0 + expected)
