"""Real SMTP servers on loopback for tests: the product's catcher, and one that refuses on cue."""

from __future__ import annotations

from aiosmtpd.controller import Controller

from notifications.catcher import MaildirHandler


class PickyHandler(MaildirHandler):
    """Refuses recipients by their local part: reject-* gets 550, busy-* gets 451, others are kept."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        local = address.split("@", 1)[0]
        if local.startswith("reject"):
            return "550 5.1.1 Mailbox does not exist"
        if local.startswith("busy"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def start_picky_server(maildir, port: int) -> Controller:
    controller = Controller(PickyHandler(maildir), hostname="127.0.0.1", port=port)
    controller.start()
    return controller
