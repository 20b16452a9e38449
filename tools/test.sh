#!/usr/bin/env bash
# npm test: lint beside the suite (it needs one core for ~25 s, while most
# test files wait on the network), then the reliability files alone, since
# they load the machine on purpose (3× overload, fuzz) and would slow the
# files that ran beside them.
set -u
cd "$(dirname "$0")/.."
NODE_TEST=(node --test --test-timeout=240000 --test-force-exit)
lint_log=$(mktemp)
npm run --silent lint >"$lint_log" 2>&1 &
lint_pid=$!
"${NODE_TEST[@]}" --test-concurrency=2 $(find dist/test -name '*.test.js' -not -path 'dist/test/reliability/*' | sort)
suite=$?
wait "$lint_pid"
lint=$?
cat "$lint_log"
rm -f "$lint_log"
"${NODE_TEST[@]}" --test-concurrency=1 $(find dist/test/reliability -name '*.test.js' | sort)
reliability=$?
echo "# npm test: lint exit $lint, suite exit $suite, reliability exit $reliability"
[ "$lint" -eq 0 ] && [ "$suite" -eq 0 ] && [ "$reliability" -eq 0 ]
