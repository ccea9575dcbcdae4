"""Every aggregate by name, with its saga reactions, for the dataflows that run them."""

from dataclasses import replace

from state import cart, catalog, health, inventory, ledger, order, payment, sagas, user

_EACH = (health.AGGREGATE, user.AGGREGATE, catalog.AGGREGATE, inventory.AGGREGATE, cart.AGGREGATE, order.AGGREGATE,
         payment.AGGREGATE, ledger.AGGREGATE)
assert set(sagas.REACTIONS) <= {a.name for a in _EACH}, "a reaction names an aggregate that does not exist"
AGGREGATES = {a.name: replace(a, react=sagas.REACTIONS.get(a.name, a.react)) for a in _EACH}
