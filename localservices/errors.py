"""The one root error of localservices, and its few kinds."""
from __future__ import annotations


class ServiceError(Exception):
    """Something went wrong starting, stopping or reaching a local service."""


class ToolMissingError(ServiceError):
    """A required program (java, mvn, initdb, pg_ctl, psql) is not installed."""


class StartError(ServiceError):
    """A service died or did not become ready in time; the message carries its log tail."""


class NotConfiguredError(ServiceError):
    """The service was never started in this folder, so it has no ports or data yet."""
