# syntax=docker/dockerfile:1
#
# The sopilot node agent, built from the repository root:
#
#   docker build -f deploy/docker/node-agent.Dockerfile \
#     --build-arg VERSION=0.1.0 --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) \
#     -t ghcr.io/sopilot/node-agent:0.1.0 .
#
# go-nvml is cgo and dlopens libnvidia-ml.so.1 at run time, so the binary
# links glibc only and the image ships no NVIDIA library: the NVIDIA
# container runtime (runtimeClassName nvidia, NVIDIA_DRIVER_CAPABILITIES
# utility) mounts the host driver's library and device nodes. The build and
# runtime images share Debian bookworm's glibc.

ARG GO_VERSION=1.26

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
# nvml.h marks old entry points deprecated; the warnings are not ours.
ENV CGO_CFLAGS="-O2 -Wno-deprecated-declarations"
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -trimpath -ldflags "${LDFLAGS}" \
      -o /out/node-agent ./cmd/node-agent

FROM debian:bookworm-slim AS node-agent
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="sopilot-node-agent" \
      org.opencontainers.image.description="sopilot node agent: NVML, InfiniBand and training progress of one GPU node" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/sopilot/sopilot" \
      org.opencontainers.image.vendor="sopilot"
COPY --from=build /out/node-agent /usr/local/bin/node-agent
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=utility
# Non-root. Attribution of GPU processes reads /proc/<pid>/cgroup and stat,
# which any user may read; reading other users' /proc/<pid>/environ (only
# needed without Slurm's cgroup plugins) needs uid 0 with CAP_SYS_PTRACE and
# CAP_DAC_READ_SEARCH, which the Helm chart grants only when asked
# (agent.attribution.readEnviron).
USER 65532:65532
EXPOSE 9478
ENTRYPOINT ["/usr/local/bin/node-agent"]
