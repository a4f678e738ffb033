"""Email: the outbox and its delivery, the inbox, templates and calendar invitations."""
