"""Every aggregate by name, for the dataflows that run them."""

from state import cart, catalog, health, inventory, ledger, order, payment, user

AGGREGATES = {a.name: a for a in (health.AGGREGATE, user.AGGREGATE, catalog.AGGREGATE, inventory.AGGREGATE,
                                       cart.AGGREGATE, order.AGGREGATE, payment.AGGREGATE, ledger.AGGREGATE)}
