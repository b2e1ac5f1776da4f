"""Regenerate ``events.json`` from the schema: ``python -m useraudit.index_templates``."""

from . import GOLDEN, write_golden

write_golden()
print(f"wrote {GOLDEN}")
