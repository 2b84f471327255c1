"""Domain errors the crud layer raises and the API maps to status codes."""

from __future__ import annotations


class NotFoundError(Exception):
    """The addressed row does not exist (404)."""


class IllegalTransitionError(Exception):
    """A lifecycle call that the run's current status does not allow (409)."""


class UnavailableError(Exception):
    """A backing service (database, Redis) cannot be reached (503). Message is safe to show."""
