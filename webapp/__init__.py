"""The admin search UI (Flask): the User actions page of an account.

    useraudit users add alice && useraudit users grant alice acme
    useraudit web --store http://127.0.0.1:9200 --port 8080

or, inside a host Flask app::

    from useraudit.webapp.app import mount
    mount(app, url_prefix="/audit", config={"USERAUDIT_STORE": "http://127.0.0.1:9200"})

Only users with ``USER_ADMIN`` on an account see its actions. See
``docs/ui.md`` for the screens, the URL parameters, the export and the
security measures; :mod:`.app` for configuration keys.
"""
