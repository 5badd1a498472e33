# tests/transport/: the gRPC transport on loopback (label "transport"). Included from
# tests/CMakeLists.txt.
raftkv_tests_in(transport raftkv_transport transport)

# Figures, not a test: tests/bench/transport_bench.c (also `transport_bench serve PORT`).
add_executable(transport_bench ${CMAKE_CURRENT_SOURCE_DIR}/bench/transport_bench.c)
target_link_libraries(transport_bench PRIVATE raftkv_transport)
