# syntax=docker/dockerfile:1
#
# The sopilot controller, in two targets built from the repository root:
#
#   docker build -f deploy/docker/controller.Dockerfile --target controller \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) \
#     -t ghcr.io/sopilot/controller:0.1.0 .
#   docker build -f deploy/docker/controller.Dockerfile --target controller-slurmcli \
#     --build-arg VERSION=0.1.0 --build-arg SLURM_VERSION=24.11 --build-arg SLURM_SUITE=trixie \
#     -t ghcr.io/sopilot/controller-slurmcli:0.1.0-slurm24.11 .
#
# controller: static binary on distroless, for --scheduler=rest (slurmrestd).
# controller-slurmcli: Debian slim with Slurm's client tools and munge, for
# --scheduler=cli. SLURM_VERSION is the Slurm release of the tools and
# SLURM_SUITE the Debian suite that packages it: 22.05 bookworm, 24.11
# trixie, 26.05 sid (the build refuses any other pair, and a suite whose
# slurm-client turns out another release). The tools must fall in the
# cluster's compatibility window (https://slurm.schedmd.com/upgrades.html:
# slurmctld accepts its own major release and the two, from 24.11 on
# three, before it): 24.11 for Soperator 1.21 to 4.1 (Slurm 24.11 to
# 25.11), 26.05 for Soperator 5.0. Soperator 1.20 (Slurm 24.05) accepts
# 23.02 to 24.05, which Debian does not package: use the REST backend
# there. The chart's image tag is <version>-slurm<SLURM_VERSION>.
# Plain Dockerfile syntax plus RUN --mount=type=cache: docker (BuildKit)
# and buildah both build it.

ARG GO_VERSION=1.26
ARG SLURM_VERSION=24.11
ARG SLURM_SUITE=trixie

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
ARG BUILD_DATE=unknown
# --version (internal/version): the image's version, commit and build date.
ARG LDFLAGS="-s -w -X github.com/sopilot/sopilot/internal/version.version=${VERSION} -X github.com/sopilot/sopilot/internal/version.commit=${REVISION} -X github.com/sopilot/sopilot/internal/version.date=${BUILD_DATE}"
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "${LDFLAGS}" \
      -o /out/controller ./cmd/controller && \
    CGO_ENABLED=0 go build -trimpath -ldflags "${LDFLAGS}" \
      -o /out/sopilot ./cmd/sopilot

FROM docker.io/library/debian:${SLURM_SUITE}-slim AS controller-slurmcli
ARG VERSION=dev
ARG REVISION=unknown
ARG SLURM_VERSION
ARG SLURM_SUITE
LABEL org.opencontainers.image.title="sopilot-controller-slurmcli" \
      org.opencontainers.image.description="sopilot controller with the Slurm command-line tools and munge (--scheduler=cli)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/sopilot/sopilot" \
      org.opencontainers.image.vendor="sopilot" \
      io.sopilot.slurm-version="${SLURM_VERSION}"
# hadolint ignore=DL3008
RUN case "${SLURM_VERSION}/${SLURM_SUITE}" in \
      22.05/bookworm|24.11/trixie|26.05/sid) ;; \
      *) echo "no Debian package of Slurm ${SLURM_VERSION} in ${SLURM_SUITE}: use SLURM_VERSION=22.05 SLURM_SUITE=bookworm, 24.11 trixie or 26.05 sid" >&2; exit 1 ;; \
    esac && \
    apt-get update && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      slurm-client munge ca-certificates && \
    rm -rf /var/lib/apt/lists/* && \
    got="$(dpkg-query -W -f '${Version}' slurm-client)" && \
    case "${got}" in \
      "${SLURM_VERSION}".*) ;; \
      *) echo "Debian ${SLURM_SUITE} now packages slurm-client ${got}, not Slurm ${SLURM_VERSION}" >&2; exit 1 ;; \
    esac && \
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
