# Linearizability tests: a real cluster (raftnodes + kvgateway) on private network namespaces,
# a seeded nemesis, concurrent clients through the gateway, the history checked by lincheck
# (tests/linearizability/lincheck, built by scripts/install-lincheck.sh). Label
# "linearizability". Without root or network namespaces, or without Go, each test prints
# SKIPPED and passes. RAFTKV_LIN_SEED in ctest's environment reproduces a schedule.
# Included from tests/CMakeLists.txt; see tests/linearizability/lin_test.py.
if(TARGET raftnode AND TARGET kvgateway)
  set(RAFTKV_PYTHON3 /usr/bin/python3 CACHE FILEPATH
      "Interpreter for the integration tests (Debian's python3-grpcio is only on /usr/bin/python3)")
  set(_lin_env
      "RAFTNODE=$<TARGET_FILE:raftnode>;KVGATEWAY=$<TARGET_FILE:kvgateway>;RAFTKV_PROTOS=${PROJECT_SOURCE_DIR}/protos;PYTHONDONTWRITEBYTECODE=1;PYTHONUNBUFFERED=1")

  # Build lincheck once before both tests (they would otherwise race to build it). Exit 2 (no
  # Go) counts as skipped; the tests then say SKIPPED themselves.
  add_test(NAME linearizability_lincheck
           COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/install-lincheck.sh)
  set_tests_properties(linearizability_lincheck PROPERTIES
    LABELS linearizability
    TIMEOUT 600
    SKIP_RETURN_CODE 2
    FIXTURES_SETUP raftkv_lincheck)

  # The checker's own tests: a checker that accepted everything would pass every run above.
  add_test(NAME linearizability_lincheck_selftest
           COMMAND bash ${PROJECT_SOURCE_DIR}/scripts/install-lincheck.sh --test)
  set_tests_properties(linearizability_lincheck_selftest PROPERTIES
    LABELS linearizability
    TIMEOUT 600
    SKIP_RETURN_CODE 2
    FIXTURES_REQUIRED raftkv_lincheck)

  # ~100 s under ASan (more under load): every fault kind once, then random faults, 90 s in all.
  add_test(NAME linearizability_nemesis
           COMMAND ${RAFTKV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/lin_test.py nemesis)
  # ~35 s: stale SERIALIZABLE reads from an isolated member must be caught.
  add_test(NAME linearizability_control
           COMMAND ${RAFTKV_PYTHON3} ${CMAKE_CURRENT_LIST_DIR}/lin_test.py control)
  set_tests_properties(linearizability_nemesis linearizability_control PROPERTIES
    LABELS linearizability
    FIXTURES_REQUIRED raftkv_lincheck
    ENVIRONMENT "${_lin_env}")
  set_tests_properties(linearizability_nemesis PROPERTIES TIMEOUT 480)
  set_tests_properties(linearizability_control PROPERTIES TIMEOUT 300)
endif()
