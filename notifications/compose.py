"""Rendering emails from templates: a subject line, a plain-text body and an HTML body.

HTML is autoescaped; subjects are collapsed to one line so nothing typed can add a header.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape


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
        subject=" ".join(subject.split()),
        text=env.get_template(f"email/{template}.txt").render(**context).strip() + "\n",
        html=env.get_template(f"email/{template}.html").render(**context),
    )
