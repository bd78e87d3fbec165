# syntax=docker/dockerfile:1
# One image, both binaries: `gateway` (the entrypoint) and `room-worker`
# (the worker Deployment sets `command`). Built on Debian bookworm so the
# binaries link against the same glibc as the distroless runtime, which has
# no shell and no package manager and runs as uid/gid 65532.
#
#   docker build -t snakepit:dev --build-arg SNAKEPIT_REVISION="$(git rev-parse --short HEAD)" .
#
# (.git stays out of the build context: the revision that
# snakepit_build_info reports comes in as a build argument.)

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
ARG SNAKEPIT_REVISION=unknown
ENV SNAKEPIT_REVISION=${SNAKEPIT_REVISION}
WORKDIR /src
COPY . .
# The caches keep the registry and the build tree between builds; the
# binaries are copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p snakepit-gateway -p snakepit-room-worker \
    && install -D -m 0755 target/release/gateway /out/gateway \
    && install -D -m 0755 target/release/room-worker /out/room-worker

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/ /usr/local/bin/
USER 65532:65532
# 8080: gateway (game, /healthz, /readyz, /metrics); 9091: room-worker
# (/healthz, /readyz, /metrics). Both listen on loopback unless told
# otherwise: the manifests set SNAKEPIT_LISTEN=0.0.0.0:PORT.
EXPOSE 8080 9091
ENTRYPOINT ["/usr/local/bin/gateway"]
