"""WSGI entry point: ``gunicorn wsgi:app`` or ``flask --app wsgi ...``."""

from app.server import create_checked_app

app = create_checked_app()
