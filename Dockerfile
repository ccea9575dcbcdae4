# One image for every BuyIt process: bootstrap, dataflows and API (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package needs (pyproject names README.md as its readme); not .venv or .buyit.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY buyit ./buyit
COPY state ./state
COPY dataflows ./dataflows
COPY sinks ./sinks
COPY ingest_api ./ingest_api
RUN pip install . && rm -rf /src/build /src/*.egg-info

# Run unprivileged; named volumes mounted on /data and /recovery start out owned by this user.
RUN useradd --create-home --uid 10001 buyit \
    && mkdir -p /data /recovery /app \
    && chown buyit:buyit /data /recovery /app
USER buyit
WORKDIR /app
ENV BUYIT_DATA_DIR=/data

EXPOSE 8000
CMD ["python", "-m", "uvicorn", "ingest_api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
