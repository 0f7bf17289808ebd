package main_test

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// externalTool finds a program a test runs (a reverse proxy, systemd's
// checker). Where it is missing the test is skipped, unless the tool is
// named in MYELIN_TEST_REQUIRE_TOOLS (comma-separated): CI sets it after
// fetching them (.ci/run), so that there a missing tool fails instead of
// passing unseen.
func externalTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if slices.Contains(strings.Split(os.Getenv("MYELIN_TEST_REQUIRE_TOOLS"), ","), name) {
		t.Fatalf("%s is required (MYELIN_TEST_REQUIRE_TOOLS) but not found: %v", name, err)
	}
	t.Skipf("%s is not installed; this check runs where it is (CI fetches it)", name)
	return ""
}
