"""The domain: pure deciders, one module per aggregate, no I/O."""
