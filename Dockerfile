# syntax=docker/dockerfile:1
#
# Multi-stage build of yunxiao_exporter: a static (CGO_ENABLED=0) binary on a
# distroless, non-root base. The same build without Docker is `make build`.
#
#   docker build -t yunxiao-exporter \
#     --build-arg VERSION=$(git describe --tags --always | sed 's/^v//') \
#     --build-arg REVISION=$(git rev-parse HEAD) .
#
# or simply `make docker`.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS builder
WORKDIR /src

# Dependencies first, so source edits reuse the module cache layer.
COPY go.mod go.sum ./
RUN go mod download

COPY . .

ARG VERSION=dev
ARG REVISION=unknown
ARG BRANCH=unknown
ARG BUILD_USER=docker
ARG BUILD_DATE=unknown

RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w \
        -X github.com/prometheus/common/version.Version=${VERSION} \
        -X github.com/prometheus/common/version.Revision=${REVISION} \
        -X github.com/prometheus/common/version.Branch=${BRANCH} \
        -X github.com/prometheus/common/version.BuildUser=${BUILD_USER} \
        -X github.com/prometheus/common/version.BuildDate=${BUILD_DATE}" \
      -o /out/yunxiao_exporter .

FROM gcr.io/distroless/static-debian12:nonroot

LABEL org.opencontainers.image.title="yunxiao_exporter" \
      org.opencontainers.image.description="Prometheus exporter for Alibaba Cloud DevOps (Yunxiao) Flow pipelines" \
      org.opencontainers.image.source="https://github.com/yunxiao-exporter/yunxiao_exporter"

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
