"""Rendering emails from templates: a subject line, a plain-text body and an HTML body; and the email policy
under which every header is set.

HTML is autoescaped. Header injection is impossible centrally: every email is built with ONE_LINE_HEADERS,
which makes each header value one line (CR, LF, NUL, U+2028 and the rest become spaces) whatever code sets it,
so text someone typed (a meeting's location, a series, school or person's name, an attachment's name) can
never add a header such as Bcc:.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.policy import EmailPolicy
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from caseconf.security import one_line


class OneLineHeaders(EmailPolicy):
    """email.policy.default, except that a header value set as text is first made one line."""

    def header_store_parse(self, name, value):
        if isinstance(value, str):
            value = one_line(value)
        return super().header_store_parse(name, value)


ONE_LINE_HEADERS = OneLineHeaders()


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("notifications", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_email(template: str, /, **context) -> RenderedEmail:
    env = _environment()
    subject = env.get_template(f"email/{template}.subject.txt").render(**context)
    return RenderedEmail(
        subject=one_line(subject),
        text=env.get_template(f"email/{template}.txt").render(**context).strip() + "\n",
        html=env.get_template(f"email/{template}.html").render(**context),
    )
