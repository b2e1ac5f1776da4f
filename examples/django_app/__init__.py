"""A small Django app audited with useraudit (django.contrib.auth sessions, token auth in views)."""
