"""Idempotent writers of the read side: Postgres views, the Redis cart cache, the analytics lake."""
