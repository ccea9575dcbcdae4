"""Bytewax wiring: read topics, run the `state/` deciders in keyed state, write events and results."""
