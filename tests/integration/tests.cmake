# Integration tests: real raftnode processes on loopback, driven from Python (python3-grpcio).
# One ctest test per tests/integration/test_*.py module, label "integration". Each module
# starts its own cluster(s) on random free ports, so they run in parallel (ctest -j2).
# Included from tests/CMakeLists.txt; see docs/testing.md. KVGATEWAY is set when the kvgateway
# target exists (a generator expression: the target may be defined after this file).
if(TARGET raftnode)
  set(RAFTKV_PYTHON3 /usr/bin/python3 CACHE FILEPATH
      "Interpreter for the integration tests (Debian's python3-grpcio is only on /usr/bin/python3)")
  # An LD_PRELOAD shim that moves a process's wall clock (test_gateway_clock.py). Not
  # instrumented: it is preloaded ahead of the sanitizer runtime.
  add_library(raftkv_clockshift MODULE ${CMAKE_CURRENT_LIST_DIR}/clockshift.c)
  target_compile_options(raftkv_clockshift PRIVATE -fno-sanitize=all)
  target_link_libraries(raftkv_clockshift PRIVATE ${CMAKE_DL_LIBS})
  file(GLOB RAFTKV_IT_MODULES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_*.py)
  foreach(mod ${RAFTKV_IT_MODULES})
    get_filename_component(name ${mod} NAME_WE)
    string(REGEX REPLACE "^test_" "" short ${name})
    add_test(NAME integration_${short} COMMAND ${RAFTKV_PYTHON3} ${mod})
    set_tests_properties(integration_${short} PROPERTIES
      LABELS integration
      TIMEOUT 240
      ENVIRONMENT "RAFTNODE=$<TARGET_FILE:raftnode>;$<$<TARGET_EXISTS:kvgateway>:KVGATEWAY=$<TARGET_FILE:kvgateway>>;RAFTKV_PROTOS=${PROJECT_SOURCE_DIR}/protos;PYTHONDONTWRITEBYTECODE=1;PYTHONUNBUFFERED=1")
    set_property(TEST integration_${short} APPEND PROPERTY ENVIRONMENT "$<$<TARGET_EXISTS:kvctl>:KVCTL=$<TARGET_FILE:kvctl>>")
    set_property(TEST integration_${short} APPEND PROPERTY ENVIRONMENT "RAFTKV_CLOCKSHIFT_LIB=$<TARGET_FILE:raftkv_clockshift>")
  endforeach()
  # The README's first command builds build/ (RelWithDebInfo) before it starts anything.
  if(TEST integration_quickstart)
    set_tests_properties(integration_quickstart PROPERTIES TIMEOUT 900)
  endif()
  # The first run installs grpcurl with `go install` (module downloads and a build).
  if(TEST integration_grpcurl)
    set_tests_properties(integration_grpcurl PROPERTIES TIMEOUT 420)
  endif()
endif()
