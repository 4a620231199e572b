"""Public pages about galleries: the chooser that ``/`` shows when there are several."""

from __future__ import annotations

from flask import render_template

from app.exceptions import ServiceUnavailable
from app.galleries.current import current_name


def choose_gallery() -> str | None:
    """The chooser page when several galleries exist and the URL names none, else None.

    With one gallery ``/`` stays its search page, so existing links keep working;
    ``/g/<name>/`` always opens that gallery.
    """
    from app.extensions import galleries

    if current_name() is not None:
        return None
    try:
        every = galleries().all()
    except ServiceUnavailable:
        return None  # the search page says what is wrong
    if len(every) < 2:
        return None
    return render_template("galleries/chooser.html", galleries=every)
