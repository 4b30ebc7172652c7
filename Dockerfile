FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PORT=3000 \
    DATABASE_URL=sqlite:////app/data/taiga_planner.db
WORKDIR /app

# Dependencies first, read from pyproject.toml: this layer is rebuilt only when they change,
# not on every code edit.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt \
    && useradd --create-home planner && mkdir /app/data && chown planner /app/data

# Then the code (no dependency resolution: they are all installed above).
COPY README.md ./
COPY bot ./bot
COPY agent ./agent
COPY taiga ./taiga
COPY storage ./storage
RUN pip install --no-cache-dir --no-deps .
USER planner

EXPOSE 3000
# Ok only when the database is at the schema this code needs (and, in Socket Mode, the
# websocket to Slack is up); the image has no curl, so Python asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/health', timeout=4)"
# The one start-up path: checks the settings, migrates, checks Slack's token, then serves
# Socket Mode or HTTP mode (whichever the settings choose), /agent/run and /health on PORT.
# SIGTERM (docker stop) shuts it down cleanly with exit code 0.
CMD ["python", "-m", "bot"]
