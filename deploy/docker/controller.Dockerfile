# syntax=docker/dockerfile:1
#
# The sopilot controller, in two targets built from the repository root:
#
#   docker build -f deploy/docker/controller.Dockerfile --target controller \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) \
#     -t ghcr.io/sopilot/controller:0.1.0 .
#   docker build -f deploy/docker/controller.Dockerfile --target controller-slurmcli \
#     --build-arg VERSION=0.1.0 -t ghcr.io/sopilot/controller-slurmcli:0.1.0 .
#
# controller: static binary on distroless, for --scheduler=rest (slurmrestd).
# controller-slurmcli: Debian slim with Slurm's client tools and munge, for
# --scheduler=cli. Slurm clients talk to a slurmctld at most two major
# releases newer: bookworm ships Slurm 22.05, trixie 24.11; pick
# SLURM_BASE to match the cluster.

ARG GO_VERSION=1.26
ARG SLURM_BASE=debian:bookworm-slim

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.Version=${VERSION}" \
      -o /out/controller ./cmd/controller && \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.Version=${VERSION}" \
      -o /out/sopilot ./cmd/sopilot

FROM ${SLURM_BASE} AS controller-slurmcli
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="sopilot-controller-slurmcli" \
      org.opencontainers.image.description="sopilot controller with the Slurm command-line tools and munge (--scheduler=cli)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/sopilot/sopilot" \
      org.opencontainers.image.vendor="sopilot"
# hadolint ignore=DL3008
RUN apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      slurm-client munge ca-certificates && \
    rm -rf /var/lib/apt/lists/* && \
    groupadd --system --gid 65532 sopilot && \
    useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/sopilot --no-create-home \
      --shell /usr/sbin/nologin sopilot && \
    install -d -o 65532 -g 65532 -m 0750 /var/lib/sopilot
COPY --from=build /out/controller /out/sopilot /usr/local/bin/
# Jobs submitted through sbatch run as this user: it must exist in the
# cluster (the jail's /etc/passwd on Soperator) under the same uid.
USER 65532:65532
EXPOSE 50051 9477
ENTRYPOINT ["/usr/local/bin/controller"]

FROM gcr.io/distroless/static-debian12:nonroot AS controller
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="sopilot-controller" \
      org.opencontainers.image.description="sopilot controller, static, for slurmrestd (--scheduler=rest)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/sopilot/sopilot" \
      org.opencontainers.image.vendor="sopilot"
COPY --from=build /out/controller /out/sopilot /usr/local/bin/
# distroless' nonroot user.
USER 65532:65532
EXPOSE 50051 9477
ENTRYPOINT ["/usr/local/bin/controller"]
