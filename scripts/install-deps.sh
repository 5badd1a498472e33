#!/usr/bin/env bash
# Install the Debian packages raftkv needs to build and test. Idempotent: when everything is
# already installed it only checks and returns; otherwise it runs apt-get update and installs
# what is missing. Runs as root, or through sudo when that is available.
set -euo pipefail

# Every package the build, the tests and the checks in scripts/test.sh need.
# libdb-dev is Berkeley DB 5.3; e2fsprogs, util-linux and mount serve the power-loss test
# (mkfs.ext4, losetup, mount). protoc-c, protoc and descriptor.proto (libprotobuf-dev)
# generate the API code and descriptor set at build time. libgrpc-dev is the gRPC C core;
# grpc-proto ships health.proto and reflection.proto; python3-grpcio, python3-protobuf and
# protobuf-compiler-grpc (grpc_python_plugin) run the Python interop and integration tests.
# debootstrap makes the local Debian base images (scripts/docker-base.sh); python3-yaml reads
# rendered Helm manifests in the container test. iproute2 and iptables build the private
# network namespaces and partitions of the linearizability tests.
PACKAGES="build-essential cmake pkg-config libcunit1-dev gcovr clang-format valgrind libdb-dev e2fsprogs util-linux mount protobuf-c-compiler libprotobuf-c-dev protobuf-compiler libprotobuf-dev libgrpc-dev grpc-proto python3-grpcio python3-protobuf protobuf-compiler-grpc debootstrap python3-yaml iproute2 iptables"

missing=()
for pkg in $PACKAGES; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [ "$status" != "install ok installed" ]; then
		missing+=("$pkg")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all packages present"
	exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
	SUDO=()
elif command -v sudo >/dev/null 2>&1; then
	SUDO=(sudo)
else
	echo "install-deps: missing packages: ${missing[*]}" >&2
	echo "install-deps: not root and sudo is not available; install them as root" >&2
	exit 1
fi

echo "install-deps: installing ${missing[*]}"
"${SUDO[@]}" apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y --no-install-recommends "${missing[@]}"
