# syntax=docker/dockerfile:1
#
# Multi-stage build of yunxiao_exporter: a static (CGO_ENABLED=0) binary on a
# distroless, non-root base. The same build without Docker is `make build`.
#
#   docker build -t yunxiao-exporter \
#     --build-arg VERSION=$(git describe --tags --always | sed 's/^v//') \
#     --build-arg REVISION=$(git rev-parse HEAD) .
#
# or simply `make docker`. Needs BuildKit (the default builder since Docker
# 23). Multi-arch images cross-compile on the build host, without emulation:
#
#   docker buildx build --platform linux/amd64,linux/arm64,linux/arm/v7 \
#     -t ghcr.io/yunxiao-exporter/yunxiao_exporter:1.2.3 \
#     --build-arg VERSION=1.2.3 --build-arg REVISION=$(git rev-parse HEAD) --push .

# Version metadata: injected into the binary (ldflags) and stated in the
# image's OCI labels.
ARG VERSION=dev
ARG REVISION=unknown

# The Go release go.mod names (its `go` line); GOTOOLCHAIN=local refuses an
# older one instead of downloading another toolchain during the build.
FROM --platform=$BUILDPLATFORM golang:1.26.8-trixie AS builder
ENV GOTOOLCHAIN=local
WORKDIR /src

# Dependencies first, so source edits reuse the module download. The module
# and build caches are BuildKit cache mounts: kept between builds, never part
# of a layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .

# Set by BuildKit from --platform: linux/arm/v7 is TARGETOS=linux,
# TARGETARCH=arm, TARGETVARIANT=v7 (GOARM=7).
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT

ARG VERSION
ARG REVISION
ARG BRANCH=unknown
ARG BUILD_USER=docker
ARG BUILD_DATE=unknown

RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    if [ "$TARGETARCH" = arm ] && [ -n "$TARGETVARIANT" ]; then export GOARM="${TARGETVARIANT#v}"; fi; \
    GOOS=$TARGETOS GOARCH=$TARGETARCH CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w \
        -X github.com/prometheus/common/version.Version=${VERSION} \
        -X github.com/prometheus/common/version.Revision=${REVISION} \
        -X github.com/prometheus/common/version.Branch=${BRANCH} \
        -X github.com/prometheus/common/version.BuildUser=${BUILD_USER} \
        -X github.com/prometheus/common/version.BuildDate=${BUILD_DATE}" \
      -o /out/yunxiao_exporter .

FROM gcr.io/distroless/static-debian12:nonroot

ARG VERSION
ARG REVISION

LABEL org.opencontainers.image.title="yunxiao_exporter" \
      org.opencontainers.image.description="Prometheus exporter for Alibaba Cloud DevOps (Yunxiao) Flow pipelines" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/yunxiao-exporter/yunxiao_exporter" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=builder /out/yunxiao_exporter /bin/yunxiao_exporter

# distroless "nonroot" is uid/gid 65532; stated numerically so Kubernetes'
# runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 10036

# Mount the config at /etc/yunxiao_exporter/config.yml and the token at
# /etc/yunxiao_exporter/token (config key yunxiao.token_file), or pass the
# token in the YUNXIAO_TOKEN environment variable. `--demo` needs neither.
ENTRYPOINT ["/bin/yunxiao_exporter"]
CMD ["--config.file=/etc/yunxiao_exporter/config.yml"]
