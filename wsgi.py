"""The bare WSGI application, for ``flask --app wsgi ...`` and tools that load one. Serve with
``consent-ledger serve`` (app.server): ``gunicorn wsgi:app`` starts no webhook deliverer and
no witness submitter, and lacks serve's worker classes (problem+json refusals, request
limits). Not started here: every ``flask --app wsgi`` command would start them too."""

from app.server import create_checked_app

app = create_checked_app()
