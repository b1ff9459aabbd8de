"""The report pages' HTML, from the Jinja2 templates in ``templates/`` with autoescape on.

Every text a page shows (cluster names, file names, run titles, notes) goes through Jinja2's
autoescape, so a name such as ``<script>`` or ``A & B`` is shown as written, never run. The CSS
and JavaScript a page inlines are files in ``assets/``, included by the templates as they are.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).with_name("templates")
ASSETS = Path(__file__).with_name("assets")


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja2 environment of the report pages (templates, then assets; ``.html`` autoescaped)."""
    env = Environment(loader=FileSystemLoader([str(TEMPLATES), str(ASSETS)]),
                      autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    # ``|tojson`` (the dive's data): compact, and strict JSON (a NaN is a bug, not a value)
    env.policies["json.dumps_kwargs"] = {"separators": (",", ":"), "allow_nan": False}
    return env


def render_page(template: str, **context) -> str:
    """Render ``templates/<template>`` with ``context``.

    Parameters
    ----------
    template : str
        File name under ``templates/``, e.g. ``"run.html"``.
    **context
        The template's variables; plain strings are escaped, ``markupsafe.Markup`` is not.

    Returns
    -------
    str
    """
    return environment().get_template(template).render(**context)
