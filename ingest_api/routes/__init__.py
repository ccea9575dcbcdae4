"""HTTP routes, one module per area of api.md."""
