package store

import (
	"strings"
	"testing"
)

func TestForEngine(t *testing.T) {
	ddl := "CREATE TABLE a (x INT);\n-- @sqlite\nCREATE VIRTUAL TABLE f USING fts5(x);\n-- @postgres\nCREATE INDEX g ON a USING GIN (x);\n-- @all\nCREATE TABLE b (y INT);\n"
	for engine, want := range map[string][]string{
		"sqlite":   {"CREATE TABLE a (x INT)", "CREATE VIRTUAL TABLE f USING fts5(x)", "CREATE TABLE b (y INT)"},
		"postgres": {"CREATE TABLE a (x INT)", "CREATE INDEX g ON a USING GIN (x)", "CREATE TABLE b (y INT)"},
	} {
		got := splitStatements(forEngine(ddl, engine))
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: %q, want %q", engine, got, want)
		}
	}
}
