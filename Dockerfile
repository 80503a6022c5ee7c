# One image for every process: web (default), ocpp, worker, beat — see docker-compose.yml.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# collectstatic needs settings to import; the key is build-time only and never used to sign.
RUN SECRET_KEY=collectstatic-only DATABASE_URL=postgres://unused/unused REDIS_URL=redis://unused:6379/0 \
    python manage.py collectstatic --noinput \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin evcharge \
 && mkdir -p /app/var && chown -R evcharge /app/var

USER evcharge
EXPOSE 8000
# web: the HTTP API, admin, health and metrics (sync workers; the OCPP socket runs in `ocpp`).
CMD ["gunicorn", "evcharge.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", \
     "--threads", "4", "--worker-class", "gthread", "--timeout", "30", "--access-logfile", "-"]
