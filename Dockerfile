# Container images of raftkv: `raftnode` (a cluster member) and `kvgateway` (the stateless
# front end); both carry `kvctl`. Standard Debian 12 base images, no BuildKit-only syntax:
#
#   docker build --target raftnode  -t raftkv/raftnode:0.6.0 .
#   docker build --target kvgateway -t raftkv/kvgateway:0.6.0 .
#
# (scripts/build-images.sh does both, after making the base images locally when no registry
# is reachable; see docs/containers.md.) Configuration is by RAFTKV_* environment variables
# (`raftnode --help`, `kvgateway --help`); the images run as uid/gid 65532, keep state only in
# /data, and work with a read-only root filesystem.

ARG DEBIAN_IMAGE=debian:bookworm
ARG DEBIAN_SLIM_IMAGE=debian:bookworm-slim

# ------------------------------------------------------------------------------ build
FROM ${DEBIAN_IMAGE} AS build
# Only what building needs (scripts/install-deps.sh also installs the test tools): the C
# toolchain and CMake, Berkeley DB 5.3, protobuf-c and protoc (code generation), the gRPC C
# core, grpc-proto (health.proto, reflection.proto) and CUnit (the configure step of tests/).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libdb-dev protobuf-c-compiler libprotobuf-c-dev \
      protobuf-compiler libprotobuf-dev libgrpc-dev grpc-proto libcunit1-dev \
 && rm -rf /var/lib/apt/lists/*

ARG BUILD_TYPE=RelWithDebInfo
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=${BUILD_TYPE} \
 && cmake --build /build -j"$(nproc)" --target raftnode kvgateway kvctl \
 && mkdir -p /out \
 && cp /build/server/node/raftnode /build/server/gateway/kvgateway /build/client/kvctl /out/ \
 && strip --strip-debug /out/* \
 && /out/raftnode --help >/dev/null && /out/kvgateway --help >/dev/null && /out/kvctl --help >/dev/null

# ------------------------------------------------------------------------------ runtime
FROM ${DEBIAN_SLIM_IMAGE} AS runtime
# The shared libraries the three binaries load (ldd): Berkeley DB, protobuf-c and the gRPC C
# core (libgrpc29 brings abseil, c-ares, re2, OpenSSL, zlib and libstdc++ along).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libdb5.3 libprotobuf-c1 libgrpc29 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt/* /var/log/dpkg.log \
 && groupadd --system --gid 65532 raftkv \
 && useradd --system --uid 65532 --gid 65532 --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin raftkv \
 && mkdir -p /data \
 && chown 65532:65532 /data \
 && chmod 0750 /data
COPY --from=build /out/raftnode /out/kvgateway /out/kvctl /usr/local/bin/
ARG VERSION=0.6.0
LABEL org.opencontainers.image.title="raftkv" \
      org.opencontainers.image.description="raftkv: a Raft key-value store (raftnode, kvgateway, kvctl)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
WORKDIR /data
USER 65532:65532
# ldd must find everything; fails the build otherwise.
RUN for b in raftnode kvgateway kvctl; do \
      if ldd /usr/local/bin/$b | grep -q 'not found'; then ldd /usr/local/bin/$b; exit 1; fi; \
    done \
 && raftnode --help >/dev/null && kvgateway --help >/dev/null && kvctl --help >/dev/null

# ------------------------------------------------------------------------------ kvgateway
FROM runtime AS kvgateway
# The gateway keeps no state; listen on every interface by default (the binary's own default
# is 127.0.0.1:7100). RAFTKV_RAFTNODES must be given.
ENV RAFTKV_LISTEN=0.0.0.0:7100
EXPOSE 7100
ENTRYPOINT ["/usr/local/bin/kvgateway"]

# ------------------------------------------------------------------------------ raftnode
# Last, so that a plain `docker build .` gives the raftnode image.
FROM runtime AS raftnode
# State (Berkeley DB environment, log, snapshots) lives in /data only. RAFTKV_NAME,
# RAFTKV_INITIAL_CLUSTER and the listen/advertise addresses come from the environment.
ENV RAFTKV_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 7001
ENTRYPOINT ["/usr/local/bin/raftnode"]
