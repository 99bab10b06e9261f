#!/usr/bin/env bash
# Runs every test file through node:test + tsx. Node 20 does not expand globs in --test
# arguments, and a bare `node --test` finds no .ts files and "passes" with zero tests: guard both.
set -euo pipefail
shopt -s globstar nullglob
cd "$(dirname "$0")/.."
files=(test/**/*.test.ts)
if [ "${#files[@]}" -eq 0 ]; then
  echo "no test files found under test/" >&2
  exit 1
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
set +e
node --import tsx --test --test-concurrency=1 --test-reporter=tap "${files[@]}" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -E '^# pass ' "$out" | tail -n1 | awk '{print $3}')
failed=$(grep -E '^# fail ' "$out" | tail -n1 | awk '{print $3}')
if [ -z "$passed" ] || [ "$passed" -eq 0 ]; then
  echo "the test run executed zero tests" >&2
  exit 1
fi
echo "${passed} passed, ${failed:-0} failed"
exit "$status"
