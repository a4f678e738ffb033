"""`caseconf up` from nothing: it becomes ready, a sign-in email arrives through the scheduled
delivery, and Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from notifications.catcher import read_maildir
from tests.conftest import free_port

pytestmark = pytest.mark.e2e


def processes_with(marker: str) -> list[int]:
    """Pids whose environment contains marker (every part of `up` inherits the data dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_up_runs_everything_and_stops_cleanly(tmp_path):
    data_dir = tmp_path / "var"
    web_port, catcher_port, prefect_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CASECONF_", "PREFECT_"))}
    env.update(
        CASECONF_DATA_DIR=str(data_dir),
        CASECONF_CATCHER_PORT=str(catcher_port),
        CASECONF_PREFECT_PORT=str(prefect_port),
        CASECONF_INBOX_PORT=str(free_port()),
        CASECONF_BASE_URL=f"http://127.0.0.1:{web_port}",
    )
    output = open(tmp_path / "up.log", "w+")
    started = time.monotonic()
    up = subprocess.Popen(
        [sys.executable, "-m", "caseconf.cli", "up", "--port", str(web_port)],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: "caseconf is running" in Path(output.name).read_text() or up.poll() is not None,
            180,
            "caseconf up to be ready",
        )
        log = Path(output.name).read_text()
        assert up.poll() is None, log
        print(f"caseconf up ready after {time.monotonic() - started:.1f} s")
        assert "EIP" in log and "@" in log  # the demo sign-in addresses are printed
        eip_email = re.search(r"EIP[^\n]*?\s(\S+@\S+)", log).group(1)

        base = f"http://127.0.0.1:{web_port}"
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        page = opener.open(f"{base}/sign-in").read().decode()
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"email": eip_email, "csrf_token": csrf, "next": "/"}).encode()
        opener.open(f"{base}/sign-in", data=form)

        # Delivery is a Prefect deployment: started at once by the web app, or by the schedule.
        def sign_in_emails():
            return [
                m
                for m in read_maildir(data_dir / "mail")
                if f"{base}/sign-in/confirm?token=" in (m.part("text/plain") or "")
            ]

        caught = wait_until(sign_in_emails, 150, "the sign-in email")
        print(f"sign-in email arrived after {time.monotonic() - started:.1f} s")
        assert [m.recipient for m in caught] == [eip_email]
        outbox = opener.open(f"{base}/outbox").read().decode()
        assert "Your sign-in link" in outbox
        # The demo's coming meetings were sent their invitations at start, not at the first quarter hour.
        assert "Invitations queued for" in log and "Invitation:" in outbox
        assert len(processes_with(str(data_dir))) >= 5  # catcher, inbox, Prefect server, flows, web
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            raise
        output.close()
    assert up.returncode == 0, Path(output.name).read_text()
    assert "Stopped." in Path(output.name).read_text()
    wait_until(lambda: not processes_with(str(data_dir)), 15, "every process of caseconf up to end")
