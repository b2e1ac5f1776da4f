"""The admin search UI (Flask)."""
