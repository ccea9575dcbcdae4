"""Every aggregate by name, for the dataflows that run them."""

from state import cart, catalog, health, inventory, user

AGGREGATES = {a.name: a for a in (health.AGGREGATE, user.AGGREGATE, catalog.AGGREGATE, inventory.AGGREGATE, cart.AGGREGATE)}
