"""The embedded broker: a single-node Apache Kafka in KRaft mode, its log on local disk.

`make install` fetches Kafka's jars from Maven Central into `.kafka/libs` (see `broker/pom.xml`);
this module writes the broker's configuration under the data directory, formats the log
directory once, and gives the command line that runs it on the machine's Java 17+.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

LOG4J2 = """\
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = STDOUT
"""


class KafkaNotInstalled(RuntimeError):
    """The Kafka jars are missing: `make install` fetches them."""


@dataclass(frozen=True)
class EmbeddedKafka:
    """One broker+controller node listening on `port` (clients) and `controller_port` (KRaft)."""

    home: Path
    data: Path
    port: int
    controller_port: int
    heap_mb: int = 512

    @property
    def libs(self) -> Path:
        return self.home / "libs"

    def properties(self) -> str:
        """server.properties: one combined node; internal topics small and unreplicated."""
        client = f"127.0.0.1:{self.port}"
        controller = f"127.0.0.1:{self.controller_port}"
        return "\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.bootstrap.servers={controller}",
            f"listeners=PLAINTEXT://{client},CONTROLLER://{controller}",
            f"advertised.listeners=PLAINTEXT://{client},CONTROLLER://{controller}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            f"log.dirs={self.data / 'log'}",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",  # the default 50 makes a first group commit slow
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=4",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            # After a crash the restarted node may not register until its old session lapses, and it opens its
            # client port only then: 12 s of outage with the 9 s default, 5 s with this (heartbeats are loopback).
            "broker.session.timeout.ms=2000",
            "broker.heartbeat.interval.ms=500",
            # The controller appends a no-op record to the metadata log every 500 ms by default, committed (and
            # fsynced) like any other: most of what an idle single node spends. Brokers of a cluster use it
            # to see that the controller lives; a single node has nobody to tell.
            "metadata.max.idle.interval.ms=5000",
            "auto.create.topics.enable=false",  # `buyit up` creates every topic; a typo must not make one
            "num.network.threads=2",
            "num.io.threads=2",
            "log.retention.hours=-1",  # facts live in the log: the event topics are the system of record
            "",
        ])

    def prepare(self) -> None:
        """Write the configuration and format the log directory the first time (a restart keeps it)."""
        if not any(self.libs.glob("kafka_2.13-*.jar")):
            raise KafkaNotInstalled(f"no Kafka jars in {self.libs}: run `make install`")
        if not shutil.which("java"):
            raise KafkaNotInstalled("Apache Kafka needs Java 17+ on the PATH")
        self.data.mkdir(parents=True, exist_ok=True)
        (self.data / "server.properties").write_text(self.properties())
        (self.data / "log4j2.properties").write_text(LOG4J2)
        if not (self.data / "log" / "meta.properties").exists():
            # `--cluster-id=` in one word: a base64 id may start with "-" and pass for an option.
            done = subprocess.run(["java", "-cp", f"{self.libs}/*", "kafka.tools.StorageTool", "format",
                                   "--standalone", f"--cluster-id={_cluster_id()}",
                                   "-c", str(self.data / "server.properties")], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"formatting Kafka's log directory failed:\n{done.stdout}{done.stderr}")

    def argv(self) -> list[str]:
        """The command that runs the broker in the foreground; SIGTERM shuts it down cleanly."""
        return ["java", f"-Xms{self.heap_mb}m", f"-Xmx{self.heap_mb}m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
                "-XX:-UsePerfData",  # no hsperfdata sampling (every 50 ms) for tools we do not use
                f"-Dkafka.logs.dir={self.data / 'logs'}",
                f"-Dlog4j2.configurationFile={self.data / 'log4j2.properties'}",
                "-cp", f"{self.libs}/*", "kafka.Kafka", str(self.data / "server.properties")]


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, base64url without padding (what `random-uuid` prints)."""
    import base64
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
