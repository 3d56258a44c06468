"""The web: HTML pages, JSON APIs, feeds, metrics and the HTTP server.

- ``app``: the routes (a WSGI application, built with ``make_app``);
- ``http``: conditional GET, compression, cache headers, proxy headers;
- ``pages``: the Jinja2 templates in ``templates/`` and what they are given;
- ``chart``: the SVG bar charts; ``metrics``: /metrics;
- ``serve``: waitress, hardened against slow and greedy clients.
"""

from feedd.web.app import make_app

__all__ = ["make_app"]
