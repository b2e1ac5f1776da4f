"""Create the example database and its users: ``python -m django_app.setup_db``."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_app.settings")


def main() -> None:
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from demo_accounts import USERS
    from django.contrib.auth.models import User

    for acc in USERS.values():
        first, _, last = acc.full_name.partition(" ")
        user, _ = User.objects.get_or_create(username=acc.username, defaults={"email": acc.email})
        user.email, user.first_name, user.last_name = acc.email, first, last
        user.is_staff = acc.is_admin
        user.set_password(acc.password)
        user.save()


if __name__ == "__main__":
    main()
