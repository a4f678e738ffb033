"""The `caseconf` command. The composition root: the one module that may import every package."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from caseconf.settings import Settings, SettingsError, configure_prefect, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        settings = load_settings()
    except SettingsError as exc:
        print("caseconf cannot start because of its configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    configure_prefect(settings)
    if args.handler in NEEDS_SCHEMA and not _schema_ready(settings):
        return 1
    try:
        return args.handler(settings, args) or 0
    except KeyboardInterrupt:
        return 130
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        print(f"caseconf could not use the database ({_masked_url(settings)}): {reason}", file=sys.stderr)
        return 1


def _masked_url(settings: Settings) -> str:
    return settings.masked()["CASECONF_DATABASE_URL"]


def _schema_ready(settings: Settings) -> bool:
    from caseconf.checks import check_database

    check = check_database(settings)
    if not check.ok:
        print(f"The database at {_masked_url(settings)} is not ready: {check.detail}.", file=sys.stderr)
        print(
            f"(The data folder is {settings.data_dir.resolve()}; set CASECONF_DATA_DIR or "
            "CASECONF_DATABASE_URL to use another.)",
            file=sys.stderr,
        )
    return check.ok


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caseconf", description="Multi-agency case conferences.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    def command(name: str, handler, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        sub.set_defaults(handler=handler)
        return sub

    up = command("up", cmd_up, "Start everything on this machine: database, mail catcher, scheduler, web.")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--no-demo", action="store_true", help="do not load the demo data on first run")

    command("check", cmd_check, "Print the effective configuration and check it works.")

    db = command("db", None, "Database schema.")
    db_commands = db.add_subparsers(title="db commands", metavar="ACTION")
    upgrade = db_commands.add_parser("upgrade", help="Create or upgrade the schema to the latest version.")
    upgrade.set_defaults(handler=cmd_db_upgrade)

    demo = command("demo", cmd_demo, "Load the fictional Kestrelford demo data (safe to run again).")
    demo.add_argument("--if-empty", action="store_true", help="only when the directory has nobody in it yet")

    directory = command("directory", None, "Import or export the directory (YAML).")
    directory_commands = directory.add_subparsers(title="directory commands", metavar="ACTION")
    for action, handler, help in (
        ("import", cmd_directory_import, "Check every row of FILE and import it only if all of it is valid."),
        ("export", cmd_directory_export, "Write the directory to FILE ('-' for standard output)."),
    ):
        sub = directory_commands.add_parser(action, help=help, description=help)
        sub.add_argument("file")
        sub.set_defaults(handler=handler)

    _add_planning_commands(command)

    web = command("web", cmd_web, "Serve the web application only.")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=8000)

    command("demo-users", cmd_demo_users, "List the demo sign-in addresses, one for each audience.")
    command("inbox-listener", cmd_inbox_listener, "Receive mail for the app mailbox over SMTP and store it.")
    command("mail-catcher", cmd_mail_catcher, "Run the built-in mail catcher only.")
    command("serve-flows", cmd_serve_flows, "Serve the scheduled flows against the Prefect server in PREFECT_API_URL.")
    command("deliver", cmd_deliver, "Deliver due email from the outbox once, now.")
    simulate = command(
        "simulate",
        cmd_simulate,
        "Rehearse the schedule: move a simulated clock through the weeks, running every sweep that would fire.",
    )
    simulate.add_argument("--from", dest="start", required=True, type=_iso_date, help="first day, e.g. 2026-11-23")
    simulate.add_argument("--weeks", type=int, default=2, help="how many weeks (1 to 13; default 2)")
    simulate.add_argument(
        "--absent",
        action="append",
        default=None,
        metavar="EMAIL",
        help="an invitee who declines every meeting in the second week (repeatable; default: the members of the"
        " agencies each series' quorum requires, to rehearse a quorum alert; --absent none for nobody)",
    )
    simulate.add_argument(
        "--send-real-mail", action="store_true", help="allow sending through CASECONF_SMTP_URL (a real mail server)"
    )
    simulate.add_argument(
        "--pause-at-meetings",
        action="store_true",
        help="stop when each meeting with an agenda starts, so it can be minuted in the browser (the web app of"
        " caseconf up shows the rehearsal's time meanwhile); press Enter to go on",
    )

    api_token = command("api-token", None, "Tokens for the JSON API; each acts as one person, with their roles.")
    api_token_commands = api_token.add_subparsers(title="api-token commands", metavar="ACTION")
    create_token = api_token_commands.add_parser("create", help="Make a token and print it (shown only this once).")
    create_token.add_argument("--email", required=True, help="the person the token acts as")
    create_token.add_argument("--name", required=True, help="what the token is for, e.g. the integration's name")
    create_token.add_argument("--days", type=int, default=90, help="days until it expires (default 90, at most 366)")
    create_token.set_defaults(handler=cmd_api_token_create)
    revoke_token = api_token_commands.add_parser("revoke", help="Stop a token working, from now on.")
    revoke_token.add_argument("id", type=int)
    revoke_token.set_defaults(handler=cmd_api_token_revoke)
    list_tokens = api_token_commands.add_parser("list", help="List tokens (never the tokens themselves).")
    list_tokens.set_defaults(handler=cmd_api_token_list)
    _add_data_protection_commands(command)
    return parser


def _factory(settings: Settings):
    from caseconf.db import make_engine, make_session_factory

    return make_session_factory(make_engine(settings.database_url))


def cmd_db_upgrade(settings: Settings, args) -> int:
    from caseconf.migrate import upgrade

    upgrade(settings.database_url)
    print("The database schema is up to date.")
    return 0


def cmd_check(settings: Settings, args) -> int:
    from caseconf.checks import run_checks

    print("Configuration:")
    for name, value in settings.masked().items():
        print(f"  {name} = {value}")
    problems = 0
    print("Checks:")
    for check in run_checks(settings):
        print(f"  [{'ok' if check.ok else 'PROBLEM'}] {check.name}: {check.detail}")
        problems += not check.ok
    return 1 if problems else 0


def cmd_demo(settings: Settings, args) -> int:
    from sqlalchemy import func, select

    from agencies.models import Person
    from caseconf.clock import SystemClock
    from caseconf.db import transaction
    from meetings.demo import load_demo

    factory = _factory(settings)
    with transaction(factory) as session:
        if args.if_empty and session.scalar(select(func.count()).select_from(Person)):
            print("The directory already has people in it; demo data not loaded.")
            return 0
        report = load_demo(session, now=SystemClock().now(), team_around_school=True)
    print(f"Demo data loaded: {report}")
    # The coming weeks' invitations go out now, not at the scheduler's first quarter hour, so invited agencies
    # find their meetings as soon as they sign in.
    from flows.clinic import due_now, sweep_record

    now = SystemClock().now()
    meetings = due_now("send-invitations", now)
    for meeting_id in meetings:
        sweep_record.fn("send-invitations", "meeting", meeting_id, now)
    print(f"Invitations queued for {len(meetings)} coming meetings.")
    return 0


def cmd_demo_users(settings: Settings, args) -> int:
    from meetings.demo import DEMO_USERS

    width = max(len(label) for label, _ in DEMO_USERS)
    for label, email in DEMO_USERS:
        print(f"{label.ljust(width)}  {email}")
    return 0


def cmd_directory_import(settings: Settings, args) -> int:
    from agencies.directory import import_directory
    from caseconf.clock import SystemClock
    from caseconf.db import transaction
    from caseconf.errors import Conflict, Invalid

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"Cannot read {path}: {exc}", file=sys.stderr)
        return 1
    try:
        with transaction(_factory(settings)) as session:
            report = import_directory(session, text=text, now=SystemClock().now())
    except Invalid as exc:
        problems = exc.problems.values() if isinstance(exc.problems, dict) else exc.problems
        print(f"{path} was not imported. Fix these problems and import it again:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    except Conflict as exc:
        print(f"{path} was not imported: {exc}", file=sys.stderr)
        return 1
    print(f"Imported {path}: {report}")
    return 0


def cmd_directory_export(settings: Settings, args) -> int:
    from agencies.directory import export_directory

    with _factory(settings)() as session:
        text = export_directory(session)
    if args.file == "-":
        sys.stdout.write(text)
    else:
        Path(args.file).write_text(text, encoding="utf-8")
        print(f"Directory written to {args.file}")
    return 0


# --- term dates and planning meetings -------------------------------------------------------------


def _add_planning_commands(command) -> None:
    terms = command("terms", None, "Term dates: import from a CSV or ICS file, or export as CSV.")
    terms_commands = terms.add_subparsers(title="terms commands", metavar="ACTION")
    import_terms = terms_commands.add_parser(
        "import", help="Check every term in FILE (CSV or ICS) and save them only if all are valid."
    )
    import_terms.add_argument("file")
    import_terms.set_defaults(handler=cmd_terms_import)
    export_terms = terms_commands.add_parser("export", help="Write the term dates as CSV to standard output.")
    export_terms.set_defaults(handler=cmd_terms_export)

    plan = command("plan", cmd_plan, "Make the meetings of a series for a term (safe to run again).")
    plan.add_argument("--series", required=True, help="the series' name or id")
    which = plan.add_mutually_exclusive_group(required=True)
    which.add_argument("--term", help="the term's name, e.g. 'Spring 2027'")
    which.add_argument("--all-terms", action="store_true", help="every term in the term dates")


def cmd_terms_import(settings: Settings, args) -> int:
    from caseconf.clock import SystemClock
    from caseconf.db import transaction
    from caseconf.errors import Invalid
    from meetings.terms import import_terms_file

    path = Path(args.file)
    try:
        content = path.read_bytes()
    except OSError as exc:
        print(f"Cannot read {path}: {exc}", file=sys.stderr)
        return 1
    try:
        with transaction(_factory(settings)) as session:
            report = import_terms_file(
                session, filename=path.name, content=content, now=SystemClock().now(), actor_id=None
            )
    except Invalid as exc:
        problems = exc.problems.values() if isinstance(exc.problems, dict) else exc.problems
        print(f"{path} was not imported. Fix these problems and import it again:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"Imported {path}: {report}")
    return 0


def cmd_terms_export(settings: Settings, args) -> int:
    from meetings.terms import export_terms_csv

    with _factory(settings)() as session:
        sys.stdout.write(export_terms_csv(session))
    return 0


def cmd_plan(settings: Settings, args) -> int:
    from caseconf.clock import SystemClock, london_text
    from caseconf.db import transaction
    from caseconf.errors import NotFound
    from meetings.planning import get_series, plan_term
    from meetings.terms import find_terms, get_term_by_name
    from notifications.emails import MailContext

    domain = MailContext.from_settings(settings).mail_domain
    now = SystemClock().now()
    with transaction(_factory(settings)) as session:
        try:
            series = get_series(session, args.series)
        except NotFound:
            print(f"There is no meeting series called {args.series!r}.", file=sys.stderr)
            return 1
        terms = find_terms(session) if args.all_terms else [get_term_by_name(session, args.term)]
        if terms == [None]:
            print(f"There is no term called {args.term!r}: import the term dates first.", file=sys.stderr)
            return 1
        made = 0
        for term in terms:
            report = plan_term(session, series=series, term=term, now=now, actor_id=None, calendar_domain=domain)
            for meeting in report.created:
                chair = meeting.chair.name if meeting.chair else "no chair"
                print(f"{term.name}: {london_text(meeting.starts_at, '%a %-d %b %Y %H:%M')} chaired by {chair}")
            made += len(report.created)
        if not made:
            print(f"{series.name}: nothing to plan; every meeting is already planned.")
        else:
            print(f"{series.name}: {made} meetings planned.")
    return 0


def cmd_web(settings: Settings, args) -> int:
    import uvicorn

    from caseconf.clock import RehearsalClock, SystemClock
    from web.app import create_app

    proxies = settings.trusted_proxies.strip()
    # With the mail catcher (the embedded set-up) the pages follow a running `caseconf simulate`.
    clock = RehearsalClock(settings.rehearsal_clock_file) if settings.uses_mail_catcher else SystemClock()
    uvicorn.run(
        create_app(settings, clock=clock),
        host=args.host,
        port=args.port,
        log_level="warning",
        # Client addresses (for rate limits and the audit log) come from X-Forwarded-For only
        # when the request arrives from a proxy named in CASECONF_TRUSTED_PROXIES.
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or None,
    )
    return 0


def cmd_mail_catcher(settings: Settings, args) -> int:
    from notifications.catcher import start_catcher

    controller = start_catcher(settings.maildir, settings.catcher_host, settings.catcher_port)
    address = f"{settings.catcher_host}:{settings.catcher_port}"
    return _serve_until_stopped(controller, f"Mail catcher listening on {address}, keeping mail in {settings.maildir}")


def _serve_until_stopped(controller, message: str) -> int:
    """Run an SMTP server (started in its own thread) until SIGTERM or Ctrl-C."""
    import signal
    import threading

    print(message, flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        controller.stop()
    return 0


def cmd_inbox_listener(settings: Settings, args) -> int:
    from caseconf.clock import SystemClock
    from caseconf.db import transaction
    from notifications.catcher import start_inbox_listener
    from notifications.inbox import store_inbound

    factory = _factory(settings)

    def keep(raw: bytes) -> None:
        with transaction(factory) as session:
            store_inbound(session, raw=raw, now=SystemClock().now())

    controller = start_inbox_listener(settings.inbox_host, settings.inbox_port, keep)
    return _serve_until_stopped(controller, f"App mailbox listening on {settings.inbox_host}:{settings.inbox_port}")


def cmd_serve_flows(settings: Settings, args) -> int:
    if not os.environ.get("PREFECT_API_URL"):
        print(
            "PREFECT_API_URL is not set. Schedules need a Prefect server: start one with "
            "'prefect server start' and set PREFECT_API_URL=http://HOST:PORT/api (caseconf up does this for you).",
            file=sys.stderr,
        )
        return 2
    from flows.deployments import serve_all

    serve_all()
    return 0


def cmd_deliver(settings: Settings, args) -> int:
    from caseconf.clock import SystemClock
    from notifications.delivery import deliver_pending

    report = deliver_pending(_factory(settings), settings, now=SystemClock().now)
    print(f"{report.sent} sent, {report.retrying} to retry, {report.failed} failed")
    for error in report.errors:
        print(f"  {error}")
    return 0


def _iso_date(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-23") from None


def cmd_simulate(settings: Settings, args) -> int:
    from caseconf import up
    from notifications.catcher import start_catcher

    if not 1 <= args.weeks <= 13:
        print("--weeks must be between 1 and 13 (a term at most).", file=sys.stderr)
        return 2
    if settings.smtp_url and not args.send_real_mail:
        print(
            "CASECONF_SMTP_URL is set, so a rehearsal would email real people. Unset it to use the mail catcher,"
            " or add --send-real-mail if that server is a test one.",
            file=sys.stderr,
        )
        return 2
    catcher = None
    if not settings.smtp_url and up.port_free(settings.catcher_host, settings.catcher_port):
        catcher = start_catcher(settings.maildir, settings.catcher_host, settings.catcher_port)
    if not os.environ.get("PREFECT_API_URL") and not up.port_free("127.0.0.1", settings.prefect_port):
        # caseconf up's scheduler is running: use it, so the rehearsal's runs show in its UI too.
        configure_prefect(settings, api_url=f"http://127.0.0.1:{settings.prefect_port}/api")
    try:
        from flows.simulate import simulate

        absent = None if args.absent is None else tuple(a for a in args.absent if a.lower() != "none")
        pause = _pause_for_minuting(settings) if args.pause_at_meetings else None
        totals = simulate(
            args.start,
            args.weeks,
            absent=absent,
            at_meeting_start=pause,
            clock_file=None if settings.smtp_url else settings.rehearsal_clock_file,
        )
    finally:
        if catcher is not None:
            catcher.stop()
    print("\nIn all: " + ", ".join(f"{n} {what}" for what, n in sorted(totals.items())))
    where = "the mail catcher (/outbox on the web app)" if not settings.smtp_url else "the SMTP server"
    print(f"Emails went to {where}; meetings, agendas and replies are on the meeting pages.")
    return 0


def _pause_for_minuting(settings: Settings):
    """While a person runs the meeting, the rehearsal's time moves on with the real time (so the room's
    clock and the end time are right) and sign-in links are delivered at once."""

    def pause(meeting_id: int, name: str, at) -> None:
        import select
        import time as wall
        from datetime import timedelta

        from caseconf.clock import london_text, write_rehearsal_time
        from notifications.delivery import deliver_pending

        print(f"\n{name} starts at {london_text(at)}. Minute it in the browser (signed in as its chair or the")
        print(f"coordinator): {settings.base_url}/meetings/{meeting_id}/room . The pages show the rehearsal's time.")
        print("Press Enter when the meeting has ended to go on with the rehearsal… ", end="", flush=True)
        started = wall.monotonic()
        factory = _factory(settings)
        while True:
            moment = at + timedelta(seconds=wall.monotonic() - started)
            write_rehearsal_time(settings.rehearsal_clock_file, moment)
            deliver_pending(factory, settings, now=lambda moment=moment: moment)
            ready, _, _ = select.select([sys.stdin], [], [], 2.0)
            if ready:
                sys.stdin.readline()
                return

    return pause


API_TOKEN_ACTOR = "caseconf api-token (command line)"  # noqa: S105 - an audit actor label, not a secret  # nosec B105


def cmd_api_token_create(settings: Settings, args) -> int:
    from datetime import timedelta

    from agencies.api_tokens import create_api_token
    from agencies.auth import find_person_by_email
    from caseconf.clock import SystemClock
    from caseconf.db import transaction
    from caseconf.errors import Invalid

    try:
        with transaction(_factory(settings)) as session:
            person = find_person_by_email(session, args.email)
            if person is None:
                print(f"No active person has the email address {args.email}.", file=sys.stderr)
                return 1
            issued = create_api_token(
                session,
                person_id=person.id,
                name=args.name,
                now=SystemClock().now(),
                valid_for=timedelta(days=args.days),
                actor_label=API_TOKEN_ACTOR,
            )
            roles = sorted({grant.role for grant in person.grants})
    except Invalid as exc:
        problems = exc.problems.values() if isinstance(exc.problems, dict) else exc.problems
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1
    print(f"API token {issued.token_id} for {person.email} ({', '.join(roles) or 'no roles yet'}),")
    print(f"valid until {issued.expires_at:%Y-%m-%d %H:%M} UTC. It is shown only now; keep it secret:")
    print(issued.raw_token)
    return 0


def cmd_api_token_revoke(settings: Settings, args) -> int:
    from agencies.api_tokens import revoke_api_token
    from caseconf.clock import SystemClock
    from caseconf.db import transaction
    from caseconf.errors import NotFound

    try:
        with transaction(_factory(settings)) as session:
            token = revoke_api_token(session, token_id=args.id, now=SystemClock().now(), actor_label=API_TOKEN_ACTOR)
            print(f"API token {token.id} ({token.name}) was revoked at {token.revoked_at:%Y-%m-%d %H:%M} UTC.")
    except NotFound:
        print(f"There is no API token {args.id}.", file=sys.stderr)
        return 1
    return 0


def cmd_api_token_list(settings: Settings, args) -> int:
    from agencies.api_tokens import find_api_tokens

    with _factory(settings)() as session:
        for token in find_api_tokens(session):
            ends = f"revoked {token.revoked_at.date()}" if token.revoked_at else f"expires {token.expires_at.date()}"
            used = f"last used {token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "never used"
            print(f"{token.id}  {token.person.email}  {token.name}  ({ends}, {used})")
    return 0


def cmd_up(settings: Settings, args) -> int:
    from caseconf.up import run_everything

    return run_everything(settings, host=args.host, port=args.port, load_demo=not args.no_demo)


def _add_data_protection_commands(command) -> None:
    retention = command(
        "retention", cmd_retention, "The retention schedule: report what is due, or report it and then apply it."
    )
    mode = retention.add_mutually_exclusive_group(required=True)
    mode.add_argument("--dry-run", action="store_true", help="report what is due and change nothing")
    mode.add_argument("--apply", action="store_true", help="report what is due, then redact or delete it")
    export = command("subject-access", cmd_subject_access, "Write a child's subject access export (a zip) for the DPO.")
    export.add_argument("--child-id", type=int, required=True, help="the child's id (shown on the DPO's search)")
    export.add_argument("--out", required=True, help="the zip file to write (not overwritten if it exists)")


def cmd_retention(settings: Settings, args) -> int:
    from caseconf.clock import SystemClock
    from caseconf.db import transaction
    from meetings.retention import RetentionRules
    from notifications import retention

    now, rules = SystemClock().now(), RetentionRules.from_settings(settings)
    with transaction(_factory(settings)) as session:
        dry = retention.dry_run(session, now, rules)
    print(f"Retention dry run {dry.id}: {dry.report['total']} records due")
    for line in retention.report_lines(dry.report):
        print(f"  {line}")
    if args.apply:
        with transaction(_factory(settings)) as session:
            applied = retention.apply_run(session, now, rules, dry, storage_dir=settings.documents_dir)
        print(f"Retention run {applied.id} applied: {applied.report['total']} records redacted or deleted")
        for line in retention.report_lines(applied.report):
            print(f"  {line}")
    return 0


def cmd_subject_access(settings: Settings, args) -> int:
    from caseconf.clock import SystemClock
    from caseconf.db import transaction
    from caseconf.errors import NotFound
    from notifications.subject_access import export_zip

    out = Path(args.out)
    if out.exists():
        print(f"{out} already exists: choose another file name.", file=sys.stderr)
        return 2
    try:
        with transaction(_factory(settings)) as session:
            data = export_zip(
                session, args.child_id, now=SystemClock().now(), storage_dir=settings.documents_dir, actor_label="cli"
            )
    except NotFound:
        print(f"There is no child with id {args.child_id}.", file=sys.stderr)
        return 1
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    print(f"Wrote the subject access export for child {args.child_id} to {out} ({len(data)} bytes).")
    return 0


# Commands that read or write the directory or the outbox refuse an unmigrated database.
NEEDS_SCHEMA = {
    cmd_simulate,
    cmd_demo,
    cmd_directory_import,
    cmd_directory_export,
    cmd_deliver,
    cmd_web,
    cmd_inbox_listener,
}
NEEDS_SCHEMA |= {cmd_api_token_create, cmd_api_token_revoke, cmd_api_token_list, cmd_simulate}
NEEDS_SCHEMA |= {cmd_retention, cmd_subject_access}

if __name__ == "__main__":
    sys.exit(main())
