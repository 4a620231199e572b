"""WSGI entry point: ``gunicorn wsgi:app`` and ``flask --app wsgi ...``.

LOOKALIKE_CONFIG=production selects ProductionConfig (refuses to start without
a real secret key and an admin password hash).
"""

import os

from app import create_app
from app.config import config_class

app = create_app(config_class(os.environ.get("LOOKALIKE_CONFIG", "")))
