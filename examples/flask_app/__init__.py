"""A small Flask app audited with useraudit (Flask-Login sessions, a bearer-token API)."""
