"""Django example settings: ``gunicorn --chdir examples django_app.wsgi``.

Environment: ``USERAUDIT_SPOOL``, ``USERAUDIT_DURABILITY``,
``USERAUDIT_TRUSTED_PROXIES``, ``EXAMPLE_DB`` (SQLite file; create it with
``python -m django_app.setup_db``).
"""

import os

SECRET_KEY = os.environ.get("EXAMPLE_SECRET", "example-secret-not-for-production")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "django_app.urls"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "useraudit.middleware.django.UserAuditConfig",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "useraudit.middleware.django.AuditMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB", "var/django-example.sqlite3"),
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USERAUDIT = {
    "SPOOL_DIR": os.environ.get("USERAUDIT_SPOOL", "var/spool"),
    "DURABILITY": os.environ.get("USERAUDIT_DURABILITY", "batch"),
    "TRUSTED_PROXIES": int(os.environ.get("USERAUDIT_TRUSTED_PROXIES", "0")),
    "ACCOUNT": os.environ.get("USERAUDIT_ACCOUNT", "example"),  # one tenant
    "RULES": "django_app.views.RULES",
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"useraudit": {"handlers": ["console"], "level": "INFO"}},
}
