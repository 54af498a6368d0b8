# syntax=docker/dockerfile:1
# Tollgate: tollgated (control plane, edge) and tollgate (agent, API client)
# in one small image. Build: docker build --build-arg VERSION=1.0.0 -t tollgate .
# Run: packaging/docker/compose.yaml; docs/install.md#containers.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=0.1.0-dev
# Static binaries: the SQLite driver (modernc.org/sqlite) is pure Go. The
# build context has no .git (.dockerignore), so the version is VERSION.
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/ ./cmd/tollgated ./cmd/tollgate

FROM alpine:3.22
# wget (busybox) for the health check; ca-certificates for ACME and webhooks.
RUN apk add --no-cache ca-certificates \
 && addgroup -S -g 10001 tollgate \
 && adduser -S -D -H -u 10001 -G tollgate -h /var/lib/tollgate tollgate \
 && mkdir -p /var/lib/tollgate /etc/tollgate \
 && chown tollgate:tollgate /var/lib/tollgate
COPY --from=build /out/tollgated /out/tollgate /usr/local/bin/
COPY LICENSE /usr/share/doc/tollgate/LICENSE
USER 10001:10001
WORKDIR /var/lib/tollgate
VOLUME /var/lib/tollgate
# API, dashboard, metrics; an edge adds its agent, HTTPS and HTTP ports.
EXPOSE 4080 4081 9100
# Liveness: /healthz on --metrics-addr, which every command here serves
# on 0.0.0.0:9100 (see CMD and compose.yaml).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD wget -q -O /dev/null http://127.0.0.1:9100/healthz || exit 1
ENTRYPOINT ["tollgated"]
CMD ["control", "--store", "/var/lib/tollgate/tollgate.db", "--api-addr", "0.0.0.0:4080", \
     "--dashboard-addr", "0.0.0.0:4081", "--metrics-addr", "0.0.0.0:9100", \
     "--bootstrap-file", "/var/lib/tollgate/bootstrap.json", "--log-format", "json"]
