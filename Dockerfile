# syntax=docker/dockerfile:1
# csv's container image: the static binaries csv and csv-kms (csv with the
# cloud KMS providers, which csv runs from its own directory for a KMS --key)
# on distroless, as a non-root user, with no shell. Build from a checkout:
#   docker build --build-arg VERSION=v1.2.3 --build-arg COMMIT=$(git rev-parse HEAD) \
#     --build-arg DATE=$(git log -1 --format=%cI) -t csv .
# and run on a build mounted at /work:
#   docker run --rm -v "$PWD:/work:ro" csv validate --policy policy.yaml out/
# The release workflow builds it for linux/amd64 and linux/arm64. The test
# TestDockerfile (scripts/release_test.go) checks the directives below.

FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
# The module and build caches are cache mounts, kept between builds; only
# what cmd/csv and cmd/csv-kms import is downloaded (go build, not go mod
# download, which fetches the test dependencies too).
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=devel
ARG COMMIT=
ARG DATE=
# CGO_ENABLED=0: a static binary, which distroless/static needs; PKCS#11 keys
# need cgo and are not available in the image (use a KMS key, or the release
# binaries that have cgo).
RUN --mount=type=cache,target=/root/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOFLAGS=-buildvcs=false \
    go build -trimpath \
      -ldflags "-s -w -X github.com/codesignval/csv/internal/cli/version.Version=${VERSION} -X github.com/codesignval/csv/internal/cli/version.Commit=${COMMIT} -X github.com/codesignval/csv/internal/cli/version.Date=${DATE}" \
      -o /out/ ./cmd/csv ./cmd/csv-kms

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.source="https://github.com/codesignval/csv" \
      org.opencontainers.image.title="csv" \
      org.opencontainers.image.description="Code signing validation for build pipelines" \
      org.opencontainers.image.licenses="Apache-2.0"
# csv-kms beside csv: csv looks for it in its own directory, never on $PATH.
COPY --from=build /out/csv /out/csv-kms /usr/local/bin/
USER nonroot:nonroot
WORKDIR /work
ENTRYPOINT ["/usr/local/bin/csv"]
CMD ["--help"]
