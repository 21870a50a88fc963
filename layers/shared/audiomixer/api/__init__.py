"""The HTTP API (FastAPI): `audiomixer.api.app.create_app()` and `app`."""
