# syntax=docker/dockerfile:1
# The nginx gateway with the built client. Build from the repository root:
#   docker build -f compose/gateway.Dockerfile -t collab-gateway:local .
# Runs unprivileged on port 8080 with prefix /srv/gateway (see gateway/README.md).

ARG NODE_IMAGE=node:20-bookworm-slim
ARG NGINX_IMAGE=nginx:1.28-alpine

# --- 1. the client: frontend/ -> /src/frontend/dist ---------------------------------
FROM ${NODE_IMAGE} AS frontend
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

# --- 2. nginx: config in /etc/nginx (next to mime.types), client in the prefix --------
FROM ${NGINX_IMAGE} AS gateway
RUN rm -f /etc/nginx/conf.d/default.conf \
    && mkdir -p /srv/gateway/tmp \
    && chown 10001:10001 /srv/gateway/tmp
COPY gateway/nginx.conf gateway/collab-upstream.conf gateway/collab-server.conf \
     gateway/collab-proxy.conf gateway/collab-security-headers.conf /etc/nginx/
COPY --from=frontend /src/frontend/dist /srv/gateway/html
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]
# nginx itself, not the image's entrypoint scripts (they edit files as root).
# `daemon off` and `error_log stderr` are set in nginx.conf.
STOPSIGNAL SIGQUIT
ENTRYPOINT ["nginx", "-p", "/srv/gateway/", "-c", "/etc/nginx/nginx.conf", "-e", "stderr"]
