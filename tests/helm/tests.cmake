# The Helm chart (helm/raftkv): helm lint --strict, helm template of the defaults and of each
# ci/*-values.yaml validated strictly against the k8s.io/api types (tests/helm/validate), and
# assertions on the rendered objects (tests/helm/check_chart.py). Label "helm".
# The first run builds helm and the validator with `go install`/`go build` into .tools/bin
# (module downloads and compiles: several minutes on 2 cores); later runs reuse them.
# Prints SKIPPED and passes when Go is not installed. Included from tests/CMakeLists.txt.
add_test(NAME helm_chart COMMAND ${CMAKE_CURRENT_LIST_DIR}/run.sh)
set_tests_properties(helm_chart PROPERTIES
  LABELS helm
  TIMEOUT 1500
  ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1;PYTHONUNBUFFERED=1")
# raftnode --help / kvgateway --help: every RAFTKV_* variable the chart sets must be one of theirs.
set_property(TEST helm_chart APPEND PROPERTY ENVIRONMENT
  "$<$<TARGET_EXISTS:raftnode>:RAFTNODE=$<TARGET_FILE:raftnode>>"
  "$<$<TARGET_EXISTS:kvgateway>:KVGATEWAY=$<TARGET_FILE:kvgateway>>")
