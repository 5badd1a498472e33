#!/usr/bin/env bash
# The test command: install dependencies, check formatting, build with sanitizers, run ctest.
#
#   scripts/test.sh                         # Sanitize build in build-sanitize/
#   BUILD_TYPE=RelWithDebInfo BUILD_DIR=build scripts/test.sh
#
# Exits with ctest's status; when the tests pass but a file is not clang-formatted, exits 1.
# Extra arguments go to ctest (for example `scripts/test.sh -L raft` or `-R test_common`).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BUILD_TYPE=${BUILD_TYPE:-Sanitize}
BUILD_DIR=${BUILD_DIR:-build-sanitize}

# Any sanitizer report is fatal; leaks count as failures.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "== dependencies"
bash "$ROOT/scripts/install-deps.sh"

# ---- formatting: every C file under these folders must be clang-formatted (.clang-format).
echo "== clang-format ($(clang-format --version))"
dirs=()
for d in common server tests client; do
	[ -d "$d" ] && dirs+=("$d")
done
files=()
if [ ${#dirs[@]} -gt 0 ]; then
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		# Tracked and untracked files, without those .gitignore excludes (build output).
		while IFS= read -r f; do
			[ -f "$f" ] && files+=("$f")
		done < <(git ls-files --cached --others --exclude-standard -- "${dirs[@]}" |
			grep -E '\.[ch]$' | sort -u)
	else
		while IFS= read -r f; do
			files+=("$f")
		done < <(find "${dirs[@]}" -type f -name '*.[ch]' | sort)
	fi
fi
unformatted=()
for f in "${files[@]}"; do
	if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
		unformatted+=("$f")
	fi
done
if [ ${#unformatted[@]} -gt 0 ]; then
	echo "FORMAT: ${#unformatted[@]} file(s) are not clang-formatted:" >&2
	printf '  %s\n' "${unformatted[@]}" >&2
	echo "FORMAT: fix with: clang-format -i ${unformatted[*]}" >&2
else
	echo "clang-format: ${#files[@]} files ok"
fi

# ---- build
echo "== configure $BUILD_DIR ($BUILD_TYPE)"
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE"
echo "== build"
cmake --build "$BUILD_DIR" -j"$(nproc)"

# ---- tests
echo "== ctest"
status=0
(cd "$BUILD_DIR" && ctest --output-on-failure --no-tests=error -j2 "$@") || status=$?
# The chaos suite's one-line summary (seeds, steps, violations), visible even when it passed.
grep -h '^chaos:' "$BUILD_DIR/Testing/Temporary/LastTest.log" 2>/dev/null || true

if [ ${#unformatted[@]} -gt 0 ]; then
	echo "FORMAT: not clang-formatted: ${unformatted[*]}" >&2
	[ "$status" -eq 0 ] && status=1
fi
exit "$status"
