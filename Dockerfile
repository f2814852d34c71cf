# Two stages: the build stage installs the dependencies into a virtualenv and compiles the
# translation catalogs; the runtime stage gets only those and the code, and runs as a user
# without privileges. `docker build .`; settings come from the environment (see .env.example).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot bot
COPY handlers handlers
COPY keyboards keyboards
COPY services services
# The dependencies stay in the virtualenv; the code runs from /app (paths to locales/ and
# migrations/ are relative to it), so the project's own copy in site-packages goes again.
RUN pip install . && pip uninstall --yes cabinet-bot
COPY locales locales
RUN pybabel compile --statistics -d locales -D messages

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
RUN groupadd --system --gid 10001 bot \
    && useradd --system --uid 10001 --gid bot --home-dir /app --no-create-home bot
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY bot bot
COPY handlers handlers
COPY keyboards keyboards
COPY services services
COPY migrations migrations
COPY alembic.ini ./
COPY --from=build /src/locales locales
# data/: the default SQLite database (DATABASE_URL=sqlite+aiosqlite:///data/bot.sqlite3);
# the only place the bot writes. Mount a volume here when SQLite is used.
RUN mkdir data && chown bot:bot data
USER bot
VOLUME ["/app/data"]
EXPOSE 8080
# Liveness: /healthz on WEB_PORT (or METRICS_PORT when set), asked by the bot's own client.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "bot", "healthcheck"]
CMD ["python", "-m", "bot"]
