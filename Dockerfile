FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=3000 \
    DATABASE_URL=sqlite:////app/data/taiga_planner.db
WORKDIR /app

COPY pyproject.toml README.md ./
COPY bot ./bot
COPY agent ./agent
COPY taiga ./taiga
COPY storage ./storage
RUN pip install --no-cache-dir . && useradd --create-home planner && mkdir /app/data && chown planner /app/data
USER planner

EXPOSE 3000
# Upgrade the schema, then serve Slack's HTTP requests, /agent/run and /health.
CMD ["sh", "-c", "python -m bot migrate && exec uvicorn bot.server:api --host 0.0.0.0 --port ${PORT} --proxy-headers"]
