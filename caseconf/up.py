"""`caseconf up`: everything on one machine, started in order and stopped together.

Each part runs as its own process group, so stopping a part also stops what it started
(Prefect runs each scheduled flow in a child process).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess  # runs only this Python on caseconf's own parts, argument lists, no shell  # nosec B404
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from caseconf.checks import check_frontend
from caseconf.migrate import upgrade
from caseconf.settings import Settings

STOP_GRACE_SECONDS = 10


@dataclass
class Part:
    name: str
    process: subprocess.Popen
    log: object = field(repr=False, default=None)


def port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_http(url: str, timeout: float, part: Part) -> bool:
    if not url.startswith("http://"):
        # urlopen would also read file: and other schemes; health checks are plain HTTP on this machine.
        raise ValueError(f"Not a health-check address: {url!r}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if part.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - http://, checked  # nosec B310
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    return False


class Supervisor:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.parts: list[Part] = []
        self.log_dir = settings.data_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Part:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop_all
        process = subprocess.Popen(  # noqa: S603 - argument lists built in this module, no shell  # nosec B603
            command,
            # An absolute data dir, so every part (and every flow run) finds the same files.
            env={**os.environ, "CASECONF_DATA_DIR": str(self.settings.data_dir.resolve()), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        part = Part(name, process, log)
        self.parts.append(part)
        return part

    def stop_all(self) -> None:
        for part in reversed(self.parts):
            _signal_group(part.process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for part in reversed(self.parts):
            try:
                part.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # Whatever is left in the group (including children of a part that exited) is killed.
            _signal_group(part.process, signal.SIGKILL)
            part.process.wait()
            part.log.close()
        self.parts.clear()

    def first_exited(self) -> Part | None:
        return next((p for p in self.parts if p.process.poll() is not None), None)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _interrupt(*_) -> None:
    raise KeyboardInterrupt


def _caseconf(*args: str) -> list[str]:
    return [sys.executable, "-m", "caseconf.cli", *args]


def run_everything(settings: Settings, *, host: str, port: int, load_demo: bool) -> int:
    started = time.monotonic()
    frontend = check_frontend()
    if not frontend.ok:
        print(f"Cannot start: GOV.UK Frontend is {frontend.detail}.", file=sys.stderr)
        return 1
    wanted = [
        ("web", host, port),
        ("Prefect server", "127.0.0.1", settings.prefect_port),
        ("app mailbox", settings.inbox_host, settings.inbox_port),
    ]
    if settings.uses_mail_catcher:
        wanted.append(("mail catcher", settings.catcher_host, settings.catcher_port))
    busy = [f"{name} port {p} on {h}" for name, h, p in wanted if not port_free(h, p)]
    if busy:
        print("Cannot start: these ports are in use: " + "; ".join(busy) + ".", file=sys.stderr)
        print(
            "Stop whatever uses them, or choose others (--port, CASECONF_PREFECT_PORT, CASECONF_CATCHER_PORT,"
            " CASECONF_INBOX_PORT).",
            file=sys.stderr,
        )
        return 1

    print("Preparing the database…", flush=True)
    upgrade(settings.database_url)
    demo = _caseconf("demo", "--if-empty")
    if load_demo and subprocess.run(demo, check=False).returncode != 0:  # noqa: S603 - our CLI  # nosec B603
        print("Loading the demo data failed; see the message above.", file=sys.stderr)
        return 1

    if "CASECONF_BASE_URL" not in os.environ:
        # Every part builds links for emails (the web app, the flows, the mailbox): all point here.
        os.environ["CASECONF_BASE_URL"] = f"http://{host}:{port}"
    supervisor = Supervisor(settings)
    # Stop on SIGTERM and SIGINT alike, also when started in the background (where SIGINT is ignored).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    api_url = f"http://127.0.0.1:{settings.prefect_port}/api"
    try:
        if settings.uses_mail_catcher:
            supervisor.start("mail-catcher", _caseconf("mail-catcher"))
        supervisor.start("inbox-listener", _caseconf("inbox-listener"))
        print("Starting the scheduler (a local Prefect server)…", flush=True)
        prefect = supervisor.start(
            "prefect-server",
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.prefect_port),
            ],
            env={"PREFECT_UI_ENABLED": "true", "PREFECT_API_URL": ""},
        )
        if not wait_for_http(f"{api_url}/health", 120, prefect):
            print(f"The Prefect server did not start; see {supervisor.log_dir / 'prefect-server.log'}", file=sys.stderr)
            return 1
        # Polling every 2 s (not 10) so a sign-in email asked for now goes out within seconds.
        supervisor.start(
            "flows", _caseconf("serve-flows"), env={"PREFECT_API_URL": api_url, "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
        )
        web = supervisor.start(
            "web", _caseconf("web", "--host", host, "--port", str(port)), env={"PREFECT_API_URL": api_url}
        )
        if not wait_for_http(f"http://{host}:{port}/healthz", 60, web):
            print(f"The web application did not start; see {supervisor.log_dir / 'web.log'}", file=sys.stderr)
            return 1
        _print_ready(settings, host, port, time.monotonic() - started)
        while True:
            exited = supervisor.first_exited()
            if exited:
                print(
                    f"{exited.name} stopped unexpectedly (exit {exited.process.returncode}); see "
                    f"{supervisor.log_dir / (exited.name + '.log')}. Stopping everything.",
                    file=sys.stderr,
                )
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
        return 0
    finally:
        # A second Ctrl-C must not leave parts running half-stopped.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        supervisor.stop_all()
        print("Stopped.", flush=True)


def _print_ready(settings: Settings, host: str, port: int, seconds: float) -> None:
    base = f"http://{host}:{port}"
    lines = [
        "",
        f"caseconf is running (ready in {seconds:.0f} s). Press Ctrl-C to stop.",
        "",
        f"  Web application   {base}",
        f"  Scheduler         http://127.0.0.1:{settings.prefect_port}   (Prefect UI: every scheduled run)",
    ]
    if settings.uses_mail_catcher:
        lines.append(f"  Mail catcher      {base}/outbox   (SMTP on {settings.catcher_host}:{settings.catcher_port})")
    lines.append(f"  App mailbox       SMTP on {settings.inbox_host}:{settings.inbox_port} (status requests, replies)")
    lines += ["", f"  Logs in {settings.data_dir.resolve() / 'logs'}", ""]
    lines += _demo_sign_in_lines(base)
    print("\n".join(lines), flush=True)


def _demo_sign_in_lines(base: str) -> list[str]:
    command = _caseconf("demo-users")
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 - our CLI  # nosec B603
    if result.returncode != 0 or not result.stdout.strip():
        return []
    return [
        f"To sign in, open {base}/sign-in and enter one of these demo addresses;",
        f"the sign-in link arrives in the mail catcher ({base}/outbox) within a few seconds:",
        *("  " + line for line in result.stdout.strip().splitlines()),
        "",
    ]
