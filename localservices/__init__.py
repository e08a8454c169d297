"""Real local services for clazzify: an Apache Kafka 4 KRaft broker and a PostgreSQL server.

No Docker, no mocks: Kafka runs from Maven Central's jars (`localservices/kafka/pom.xml`),
PostgreSQL from the distribution's server binaries. Command line: `python -m localservices
up|down|status|env`. Python API::

    from localservices import LocalServices
    services = LocalServices(".services")
    env = services.up()             # {'CLAZZIFY_KAFKA_BOOTSTRAP': ..., 'CLAZZIFY_DATABASE_URL': ...}
    services.postgres.stop(); services.postgres.start()    # fault injection
    services.kafka.restart()
    services.down()
"""
from .broker import KafkaBroker
from .errors import NotConfiguredError, ServiceError, StartError, ToolMissingError
from .postgres import Postgres
from .stack import LocalServices, default_workdir

__all__ = [
    "KafkaBroker",
    "LocalServices",
    "NotConfiguredError",
    "Postgres",
    "ServiceError",
    "StartError",
    "ToolMissingError",
    "default_workdir",
]
