# One image for every useraudit process in docker-compose.yml: the indexer,
# the admin web UI and the demo host app (each service picks its command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# The packages live in top-level folders; useraudit/ links to each of them
# (relative symlinks, which COPY keeps), see docs/development.md.
COPY pyproject.toml README.md ./
COPY useraudit ./useraudit
COPY middleware ./middleware
COPY indexer ./indexer
COPY store ./store
COPY webapp ./webapp
COPY index_templates ./index_templates
COPY detect ./detect
COPY integrity ./integrity
COPY devnode ./devnode
COPY demo ./demo
RUN pip install . \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/useraudit useraudit \
 && mkdir -p /var/lib/useraudit/spool \
 && chown -R useraudit:useraudit /var/lib/useraudit

# State (spool, web users) under one directory; named volumes mounted here
# are initialised from the image, so they start owned by the useraudit user.
ENV USERAUDIT_HOME=/var/lib/useraudit \
    USERAUDIT_SPOOL=/var/lib/useraudit/spool
WORKDIR /var/lib/useraudit
USER useraudit

ENTRYPOINT ["useraudit"]
CMD ["--help"]
