"""A small FastAPI app audited with useraudit (bearer tokens, auth in dependencies)."""
