"""Fault injection for the reliability tests. Production keeps it off (``CLAZZIFY_FAULT_POINTS`` empty).

A spec is a comma-separated list of ``point@probability`` (kill the process with
SIGKILL when the point is reached, with that probability), ``point=seconds``
(sleep there: slow processing) and ``point^`` (raise an unexpected exception
there: a bug in a stage thread). Points:

* ``before_upsert`` — results computed, nothing written;
* ``after_db_commit`` — rows committed in PostgreSQL, offsets not yet committed;
* ``on_revoke`` — inside the partition-revoke callback (mid-rebalance);
* ``store`` (delay only) — before each batch's upsert, e.g. ``store=40`` to
  exceed ``max.poll.interval.ms``.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import time

logger = logging.getLogger(__name__)

KILL_POINTS = ("before_upsert", "after_db_commit", "on_revoke")


class Faults:
    """Parsed spec; :meth:`hit` is a no-op unless the point is configured."""

    def __init__(self, spec: str = "") -> None:
        self.kill: dict[str, float] = {}
        self.delay: dict[str, float] = {}
        self.bug: set[str] = set()
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            if part.endswith("^"):
                self.bug.add(part[:-1].strip())
            elif "@" in part:
                name, prob = part.split("@", 1)
                self.kill[name.strip()] = float(prob)
            elif "=" in part:
                name, seconds = part.split("=", 1)
                self.delay[name.strip()] = float(seconds)
            else:
                self.kill[part] = 1.0
        unknown = (set(self.kill) | self.bug) - set(KILL_POINTS)
        if unknown:
            raise ValueError(f"unknown fault points {sorted(unknown)}; known: {KILL_POINTS}")
        if self.kill or self.delay or self.bug:
            logger.warning("FAULT INJECTION ENABLED kill=%s delay=%s bug=%s", self.kill, self.delay, self.bug)

    def hit(self, point: str) -> None:
        seconds = self.delay.get(point)
        if seconds:
            time.sleep(seconds)
        if point in self.bug:
            raise RuntimeError(f"fault injection: simulated bug at {point}")
        prob = self.kill.get(point)
        if prob and random.random() < prob:
            logger.warning("fault injection: SIGKILL at %s", point)
            os.kill(os.getpid(), signal.SIGKILL)
