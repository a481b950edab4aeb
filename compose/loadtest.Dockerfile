# syntax=docker/dockerfile:1
# locust with the WebSocket and JSON libraries the load tests (loadtests/) may use.
# The locustfile itself is mounted at /loadtests by compose, not baked in.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS loadtest
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN python -m pip install --no-cache-dir \
        "locust==2.47.0" \
        "websockets==17.4" \
        "websocket-client==1.9.2" \
        "orjson==3.13.0" \
        "PyJWT==2.15.1"
WORKDIR /loadtests
USER 10001:10001
# A one-shot load generator (compose `run --rm`), not a service: nothing to probe.
HEALTHCHECK NONE
CMD ["locust", "--help"]
