"""The IMAP poller against a real Dovecot on loopback (Debian package dovecot-imapd), in a temp dir."""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select

from notifications.imap import ImapProblem, keep_in_inbox, poll_imap
from notifications.models import InboundMessage
from tests.conftest import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "clinic", "s3cret pass"


@pytest.fixture
def imap_server():
    """A Dovecot serving one passwd-file user on 127.0.0.1, plain IMAP, for this test only."""
    if not Path(DOVECOT).exists():
        pytest.fail("Dovecot is not installed: scripts/test installs it (apt-get install dovecot-imapd)")
    port = free_port()
    # Not under pytest's tmp dir: that is private to us, and Dovecot's own users must read the config.
    root = Path(tempfile.mkdtemp(prefix="caseconf-dovecot-"))
    os.chmod(root, 0o755)  # noqa: S103 - world-readable on purpose: Dovecot runs as its own users
    for name in ("run", "mail", "home"):
        (root / name).mkdir()
    if os.geteuid() == 0:
        # Dovecot will not run mail as root: the mail belongs to its own unprivileged user.
        mail_user = pwd.getpwnam("dovecot")
        internal = "default_internal_user = dovecot\ndefault_login_user = dovenull\n"
        shutil.chown(root / "mail", mail_user.pw_uid, mail_user.pw_gid)
        shutil.chown(root / "home", mail_user.pw_uid, mail_user.pw_gid)
    else:
        mail_user = pwd.getpwuid(os.getuid())
        internal = f"default_internal_user = {mail_user.pw_name}\ndefault_login_user = {mail_user.pw_name}\n"
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    (root / "dovecot.conf").write_text(
        f"""
base_dir = {root}/run
state_dir = {root}/run
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
{internal}default_internal_group = {"dovecot" if os.geteuid() == 0 else mail_user.pw_name}
first_valid_uid = {mail_user.pw_uid}
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""
    )
    process = subprocess.Popen([DOVECOT, "-F", "-c", str(root / "dovecot.conf")], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while True:
        try:
            imaplib.IMAP4("127.0.0.1", port, timeout=2).logout()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                process.kill()
                pytest.fail(f"dovecot did not start: {process.stderr.read().decode()} {log}")
            time.sleep(0.1)
    yield f"imap://{USER}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{port}/INBOX", port
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(root, ignore_errors=True)


def deliver(port: int, subject: str) -> None:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "camhs.rep@kestrelford.example.org", "clinic@x", subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@mail.example.org>"
    message.set_content(f"Body of {subject}")
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login(USER, PASSWORD)
    client.append("INBOX", None, None, message.as_bytes())
    client.logout()


def unseen(port: int) -> int:
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login(USER, PASSWORD)
    client.select("INBOX")
    count = len(client.search(None, "UNSEEN")[1][0].split())
    client.logout()
    return count


def test_unseen_messages_are_kept_then_flagged_seen(imap_server, session_factory, session, clock):
    url, port = imap_server
    for n in range(3):
        deliver(port, f"Reply {n}")
    assert unseen(port) == 3
    assert poll_imap(url, keep_in_inbox(session_factory, clock.now)) == 3
    assert unseen(port) == 0
    subjects = sorted(session.scalars(select(InboundMessage.subject)))
    assert subjects == ["Reply 0", "Reply 1", "Reply 2"]
    assert poll_imap(url, keep_in_inbox(session_factory, clock.now)) == 0  # nothing new


def test_a_message_that_could_not_be_kept_stays_unseen(imap_server, session_factory, session, clock):
    url, port = imap_server
    deliver(port, "First")
    deliver(port, "Second")
    kept: list[bytes] = []

    def keep_one_then_fail(raw: bytes) -> None:
        if kept:
            raise RuntimeError("database unavailable")
        kept.append(raw)

    with pytest.raises(RuntimeError):
        poll_imap(url, keep_one_then_fail)
    assert len(kept) == 1 and unseen(port) == 1
    assert poll_imap(url, keep_in_inbox(session_factory, clock.now), limit=10) == 1
    assert session.scalar(select(func.count()).select_from(InboundMessage)) == 1
    assert b"Second" in session.scalar(select(InboundMessage.raw))


def test_limit_and_bad_credentials(imap_server):
    url, port = imap_server
    for n in range(3):
        deliver(port, f"Message {n}")
    seen: list[bytes] = []
    assert poll_imap(url, seen.append, limit=2) == 2 and unseen(port) == 1
    with pytest.raises(ImapProblem):
        poll_imap(url.replace("s3cret", "wrong"), seen.append)
    with pytest.raises(ImapProblem):
        poll_imap(f"imap://{USER}:x@127.0.0.1:{free_port()}/INBOX", seen.append)
