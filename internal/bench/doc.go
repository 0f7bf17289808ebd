// Package bench holds Myelin's end-to-end benchmarks: each starts a real
// server (internal/testserver) and drives it over HTTP, as clients would.
// They only run with -bench; docs/benchmarks.md explains how to run them
// and records the figures measured.
package bench
