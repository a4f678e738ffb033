"""How much the outbox costs: raw aiosmtplib sends against the catcher (baseline) versus the
same number of messages queued and delivered through the outbox, in the same process.

    .venv/bin/python bench/outbox_delivery.py [--messages 500] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

from caseconf.clock import SystemClock
from caseconf.db import make_engine, make_session_factory, transaction
from caseconf.migrate import upgrade
from notifications.catcher import start_catcher
from notifications.delivery import Sender, deliver_due
from notifications.outbox import enqueue


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def raw_sends(port: int, count: int) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
        for n in range(count):
            message = EmailMessage()
            message["From"] = "clinic@kestrelford.example.org"
            message["To"] = "camhs.rep@kestrelford.example.org"
            message["Subject"] = f"Baseline {n}"
            message.set_content("Papers are ready on the portal.\n" * 20)
            await client.send_message(message)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="caseconf-bench-"))
    url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    upgrade(url)
    factory = make_session_factory(make_engine(url))
    port = free_port()
    catcher = start_catcher(work / "mail", "127.0.0.1", port)
    clock = SystemClock()
    try:
        started = time.perf_counter()
        asyncio.run(raw_sends(port, args.messages))
        baseline = time.perf_counter() - started

        started = time.perf_counter()
        with transaction(factory) as session:
            for n in range(args.messages):
                enqueue(
                    session,
                    now=clock.now(),
                    idempotency_key=f"bench:{n}",
                    kind="bench",
                    recipient="camhs.rep@kestrelford.example.org",
                    subject=f"Outbox {n}",
                    body_text="Papers are ready on the portal.\n" * 20,
                    mail_domain="kestrelford.example.org",
                )
        queued = time.perf_counter() - started
        started = time.perf_counter()
        sent = 0
        while True:
            report = deliver_due(
                factory,
                smtp_url=f"smtp://127.0.0.1:{port}",
                sender=Sender("clinic@kestrelford.example.org", "Bench"),
                now=clock.now,
                backoff=timedelta(seconds=30),
                limit=200,
            )
            sent += report.sent
            if not report.claimed:
                break
        delivered = time.perf_counter() - started
    finally:
        catcher.stop()
    n = args.messages
    print(f"database: {url.split(':')[0]}; {n} messages; catcher on loopback")
    print(f"baseline  raw aiosmtplib, one connection : {baseline:6.2f} s  {n / baseline:7.0f} msg/s")
    print(f"outbox    enqueue in one transaction     : {queued:6.2f} s  {n / queued:7.0f} msg/s")
    print(f"outbox    claim, send, mark (batches 200): {delivered:6.2f} s  {sent / delivered:7.0f} msg/s")
    print(f"delivery overhead over the baseline      : {delivered / baseline:6.2f}x")


if __name__ == "__main__":
    main()
