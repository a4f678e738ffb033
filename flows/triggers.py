"""Asking for a sweep to run now (e.g. a sign-in email should not wait for the next minute)."""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("caseconf.flows")

# "<flow name>/<deployment name>", as served by flows.deployments
DELIVER_OUTBOX = "deliver-outbox/deliver-outbox"


def request_delivery() -> None:
    """Start an outbox delivery run in the background; the schedule is the fallback if this fails."""
    if not os.environ.get("PREFECT_API_URL"):
        return

    def run() -> None:
        try:
            from prefect.deployments import run_deployment

            run_deployment(DELIVER_OUTBOX, timeout=0)
        except Exception:  # the every-minute schedule delivers it anyway
            log.warning("Could not start an immediate outbox delivery", exc_info=True)

    threading.Thread(target=run, name="request-delivery", daemon=True).start()
