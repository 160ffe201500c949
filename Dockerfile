# The odoo-dr image for the Kubernetes CronJobs that `odoo-dr k8s render` writes.
#
#   docker build -t odoo-dr:0.1.0 .
#
# PostgreSQL clients of several major versions come from the PostgreSQL project's
# apt repository (PGDG): odoo-dr picks the pg_dump of the server's major version,
# or the next newer one. Set PG_MAJORS to the majors your servers run.
FROM python:3.11.11-slim-bookworm

ARG PG_MAJORS="13 14 15 16 17"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Versions come from the Debian and PGDG repositories of the build day: the major
# versions are pinned by PG_MAJORS, and rebuilding picks up security fixes.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && install -d /usr/share/postgresql-common/pgdg \
    && curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
        https://www.postgresql.org/media/keys/ACCC4CF8.asc \
    && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc]" \
        "https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list \
    && apt-get update \
    && clients=() \
    && for major in ${PG_MAJORS}; do clients+=("postgresql-client-${major}"); done \
    && apt-get install -y --no-install-recommends \
        "${clients[@]}" pgbackrest redis-tools zstd \
    && apt-get purge -y --auto-remove curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/odoo-dr
COPY pyproject.toml README.md ./
COPY src ./src
# The project's dependencies are pinned with == in pyproject.toml.
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --user-group --home-dir /tmp --no-create-home odoo-dr

# The CronJobs mount an emptyDir on /tmp and keep the root file system read-only.
ENV HOME=/tmp \
    ODOO_DR_PROGRESS=0 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 10001:10001
ENTRYPOINT ["odoo-dr"]
CMD ["--help"]
