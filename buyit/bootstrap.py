"""Idempotent start-up chores: topics on the broker, tables in Postgres."""

from __future__ import annotations

from pathlib import Path

import psycopg
import psycopg.sql
from confluent_kafka.admin import AdminClient, NewTopic

from buyit.envelope import all_topics
from buyit.processes import wait_for
from buyit.settings import Settings


def create_topics(settings: Settings) -> None:
    """Create every topic that does not exist yet, and wait until the broker lists them."""
    admin = AdminClient({"bootstrap.servers": ",".join(settings.brokers)})
    existing = set(admin.list_topics(timeout=10).topics)
    missing = [NewTopic(t, num_partitions=settings.buyit_topic_partitions, replication_factor=1)
               for t in all_topics() if t not in existing]
    if missing:
        for topic, future in admin.create_topics(missing).items():
            try:
                future.result(15)
            except Exception as err:  # created meanwhile by another process: fine
                if "TOPIC_ALREADY_EXISTS" not in str(err) and "already exists" not in str(err).lower():
                    raise
    wait_for(lambda: _all_led(admin.list_topics(timeout=5).topics), 30, "every topic partition to have a leader")


def _all_led(listed: dict) -> bool:
    """Every topic exists and each of its partitions has a leader: a partition just created may not have
    one yet, and a client that asks it for offsets then (the API's results reader) fails."""
    return all(topic in listed and listed[topic].partitions
               and all(p.leader >= 0 and p.error is None for p in listed[topic].partitions.values())
               for topic in all_topics())


def create_schema(database_url: str, schema: str | None = None) -> None:
    """Create the view tables if they are missing (in `schema`, for a replay into a fresh schema, else the default one)."""
    import sinks
    sql = (Path(sinks.__file__).parent / "schema.sql").read_text()
    with psycopg.connect(database_url, autocommit=True) as conn:
        if schema is not None:
            conn.execute(psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(psycopg.sql.Identifier(schema)))
            conn.execute(psycopg.sql.SQL("SET search_path TO {}").format(psycopg.sql.Identifier(schema)))
        conn.execute(sql)


if __name__ == "__main__":
    from buyit.settings import get_settings

    settings = get_settings()
    create_topics(settings)
    create_schema(settings.database_url)
