"""gunicorn's configuration, read from the working directory (run gunicorn from the repo root).

Command-line flags override these. The start-up check runs once, in the master, before it
binds or forks: a missing setting or an unreachable PostgreSQL/Redis is one line and exit 1.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")


def on_starting(server: object) -> None:
    from config.startup import services_check_or_exit

    services_check_or_exit()
