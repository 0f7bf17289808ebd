#!/bin/sh
# The scale curve of issue 20 item 3 (BenchmarkScaleCurve): 100, 1,000 and
# 10,000 users, each in 10 rooms of 2 to 5,000 members, a tenth of them
# long-polling /sync while 50 messages a second are sent. Each step runs
# the built server in a process of its own on SQLite, and on PostgreSQL
# too when MYELIN_TEST_POSTGRES is set. About an hour for the whole curve
# on 2 cores (the 10,000-user setup is most of it); figures and how to
# read them: docs/benchmarks.md, "Scale curve".
#
#   contrib/bench/scale-curve.sh                  # the whole curve
#   MYELIN_SCALE_USERS=100,1000 contrib/bench/scale-curve.sh
#   MYELIN_SCALE_WINDOW=60s ...                   # a longer measuring window (30 s)
#   MYELIN_BENCH_CPUPROFILE=DIR ...               # the server's CPU and heap profiles
#                                                 # over each window, DIR/scale-<users>-<engine>.*
set -eu
cd "$(dirname "$0")/../.."
exec go test -tags goolm -run '^$' -bench 'ScaleCurve' -benchtime 1x -timeout 120m -v ./internal/bench/ "$@"
