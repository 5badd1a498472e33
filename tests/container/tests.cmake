# Container test: builds the raftkv/raftnode and raftkv/kvgateway images (scripts/build-images.sh)
# and runs a 3-replica cluster of containers from the Helm chart's rendered manifests
# (tests/container/test_container.py, docs/containers.md). Label "container". Prints SKIPPED
# and passes when no Docker engine answers. Serial: it loads both cores while it builds, and
# its containers would skew the timing of the other tests. The first run builds the images from
# scratch (several minutes; more with a cold apt mirror), later runs reuse the layer cache.
set(RAFTKV_PYTHON3 /usr/bin/python3 CACHE FILEPATH
    "Interpreter for the integration tests (Debian's python3-grpcio is only on /usr/bin/python3)")
add_test(NAME container_cluster COMMAND ${RAFTKV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/test_container.py)
set_tests_properties(container_cluster PROPERTIES
  LABELS container
  RUN_SERIAL TRUE
  TIMEOUT 2400
  ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;PYTHONUNBUFFERED=1")
