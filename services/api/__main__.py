"""`python -m services.api`: serve the REST API with waitress."""

from __future__ import annotations

import logging

import waitress

from spaas.observability import setup_logging
from spaas.settings import ApiSettings

from services.api.app import create_app


def main() -> None:
    settings = ApiSettings.from_env()
    setup_logging("api", settings.log_level)
    app = create_app(settings)
    logging.getLogger("api").info("serving the API on http://%s:%d/api/v1", settings.host, settings.port)
    waitress.serve(app, host=settings.host, port=settings.port, threads=settings.threads, ident="spaas")


if __name__ == "__main__":
    main()
