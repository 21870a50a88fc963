"""EventBridge schedules of the template (`Type: Schedule`, `rate(...)`): one timer thread per schedule
invokes its function in-process with the event EventBridge sends ("Scheduled Event"). Periods are scaled
by AUDIOMIXER_LOCAL_TIME_SCALE like the queues' visibility timeouts, so the tests see a 15-minute sweep
run every few seconds."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from audiomixer_local import functions
from audiomixer_local.resources import FunctionSpec, LocalResources, scaled_timeout

log = logging.getLogger("audiomixer_local.scheduler")


def scheduled_event(spec: FunctionSpec, region: str, account_id: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account_id,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{account_id}:rule/{spec.name}-schedule"],
        "detail": {},
    }


class Schedule:
    def __init__(self, spec: FunctionSpec, period_s: float, res: LocalResources) -> None:
        self.spec, self.period_s, self.res = spec, period_s, res
        self.invocations = 0
        self.errors = 0
        self.last_result: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"schedule-{spec.logical_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            started = time.monotonic()
            try:
                outcome = functions.invoke(
                    self.spec, scheduled_event(self.spec, self.res.region, self.res.account_id)
                )
                self.last_result = outcome.result
            except Exception:  # like an async invoke: logged, and the next period runs anyway
                self.errors += 1
                log.exception("scheduled %s failed", self.spec.logical_id)
            finally:
                self.invocations += 1
            log.debug("scheduled %s ran in %.2f s", self.spec.logical_id, time.monotonic() - started)

    def describe(self) -> dict[str, Any]:
        return {"period_s": self.period_s, "invocations": self.invocations, "errors": self.errors}


def build_schedules(res: LocalResources) -> list[Schedule]:
    return [
        Schedule(spec, scaled_timeout(period), res)
        for spec in res.functions.values()
        for period in spec.schedules_s
    ]
