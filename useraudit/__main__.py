"""``python -m useraudit`` is the ``useraudit`` command."""

from useraudit.cli import main

main()
