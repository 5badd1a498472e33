# raftkv_node_codec: protobuf <-> raft messages (peer_codec.c) and protobuf <-> kv commands
# and results (api.c). Pure functions: no gRPC runtime, no threads.
add_library(raftkv_node_codec STATIC peer_codec.c api.c)
target_include_directories(raftkv_node_codec PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(raftkv_node_codec PUBLIC raftkv_raft raftkv_kv raftkv_proto)
