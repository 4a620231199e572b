"""Trust the reverse proxy's X-Forwarded-* headers, only when told how many proxies there are.

Behind nginx (nginx/lookalike.conf.template) set ``LOOKALIKE_PROXY_FIX=1``:
``request.remote_addr`` is then the client's address, and the scheme, host and
prefix are the ones the client used. Without it the headers are ignored, since
anyone could send them to an app that is reached directly.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def init_app(app: Flask) -> None:
    hops = int(app.config.get("PROXY_FIX") or 0)
    if hops <= 0 or isinstance(app.wsgi_app, ProxyFix):
        return
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_prefix=hops)
