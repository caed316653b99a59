# One image for every role: api, worker, beat. The role is the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PUBLISHER_DATA_DIR=/var/lib/publisher \
    PUBLISHER_CONFIG=/app/config/matrix.toml

WORKDIR /app
COPY pyproject.toml README.md ./
COPY publisher ./publisher
COPY channels ./channels
COPY sandbox ./sandbox
COPY config ./config
RUN pip install --no-cache-dir . \
    && useradd --system --home /var/lib/publisher publisher \
    && mkdir -p /var/lib/publisher && chown publisher /var/lib/publisher

USER publisher
EXPOSE 8000
CMD ["publisher", "serve", "--host", "0.0.0.0", "--port", "8000"]
