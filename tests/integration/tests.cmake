# Integration tests: real raftnode processes on loopback, driven from Python (python3-grpcio).
# One ctest test per tests/integration/test_*.py module, label "integration". Each module
# starts its own cluster(s) on random free ports, so they run in parallel (ctest -j2).
# Included from tests/CMakeLists.txt; see docs/testing.md. KVGATEWAY is set when the kvgateway
# target exists (a generator expression: the target may be defined after this file).
if(TARGET raftnode)
  set(RAFTKV_PYTHON3 /usr/bin/python3 CACHE FILEPATH
      "Interpreter for the integration tests (Debian's python3-grpcio is only on /usr/bin/python3)")
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
