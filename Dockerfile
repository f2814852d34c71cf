FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot bot
COPY handlers handlers
COPY keyboards keyboards
COPY services services
COPY locales locales
COPY migrations migrations
COPY alembic.ini babel.cfg ./
RUN pip install --no-cache-dir . && pybabel compile -d locales -D messages
CMD ["python", "-m", "bot"]
