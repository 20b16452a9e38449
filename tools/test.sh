#!/usr/bin/env bash
# npm test: lint beside the suite, then the reliability files alone, since
# they load the machine on purpose (3× overload, fuzz) and would slow the
# files that ran beside them. Four files at a time: most of a file's time is
# waiting on servers, databases, sipp and the network (2 cores: 359 s of wall
# time for the files at 2, 290 s at 4 with the CPUs 94% busy).
set -u
cd "$(dirname "$0")/.."
# --test-force-exit ends a file that leaves a handle open. With files running
# side by side it may drop the last verdicts of a file on the way to this
# process (nodejs/node#64833): the "# tests" count is then short, but a file
# whose test failed still fails through its exit code.
NODE_TEST=(node --test --test-timeout=240000 --test-force-exit)
lint_log=$(mktemp)
npm run --silent lint >"$lint_log" 2>&1 &
lint_pid=$!
"${NODE_TEST[@]}" --test-concurrency=4 $(find dist/test -name '*.test.js' -not -path 'dist/test/reliability/*' | sort)
suite=$?
wait "$lint_pid"
lint=$?
cat "$lint_log"
rm -f "$lint_log"
"${NODE_TEST[@]}" --test-concurrency=1 $(find dist/test/reliability -name '*.test.js' | sort)
reliability=$?
echo "# npm test: lint exit $lint, suite exit $suite, reliability exit $reliability"
[ "$lint" -eq 0 ] && [ "$suite" -eq 0 ] && [ "$reliability" -eq 0 ]
