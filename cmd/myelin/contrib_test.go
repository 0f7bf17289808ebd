package main_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/config"
)

// The systemd unit in contrib/ must pass systemd's own checker, with its
// ExecStart pointed at the binary these tests built: an option systemd
// does not know, or misspelt hardening, is a warning the admin would only
// see in the journal.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze := externalTool(t, "systemd-analyze")
	unit, err := os.ReadFile("../../contrib/systemd/myelin.service")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("ExecStart=/usr/local/bin/myelin serve")) {
		t.Fatal("the unit does not start /usr/local/bin/myelin serve")
	}
	copied := filepath.Join(t.TempDir(), "myelin.service")
	if err := os.WriteFile(copied, bytes.ReplaceAll(unit, []byte("/usr/local/bin/myelin"), []byte(binary)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", copied).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The reverse-proxy examples quote the myelin.yaml they go with, and the
// unit sets environment variables: each must name settings that exist,
// and the quoted configuration must load and publish the delegation the
// proxy relies on.
func TestContribExamplesMatchConfig(t *testing.T) {
	envName := regexp.MustCompile(`MYELIN_[A-Z0-9_]+`)
	for _, file := range []string{"systemd/myelin.service", "caddy/Caddyfile", "nginx/myelin.conf"} {
		raw, err := os.ReadFile(filepath.Join("../../contrib", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range envName.FindAllString(string(raw), -1) {
			if !slices.Contains(config.EnvVars, name) {
				t.Errorf("%s: %s is not a Myelin environment variable", file, name)
			}
		}
		if file == "systemd/myelin.service" {
			continue
		}
		// The quoted configuration: comment lines indented by three
		// spaces after "#", from "server_name:" on.
		var yaml []string
		for _, line := range strings.Split(string(raw), "\n") {
			if rest, ok := strings.CutPrefix(line, "#   "); ok && (len(yaml) > 0 || strings.HasPrefix(rest, "server_name:")) {
				yaml = append(yaml, rest)
			}
		}
		if len(yaml) == 0 {
			t.Fatalf("%s quotes no myelin.yaml", file)
		}
		path := filepath.Join(t.TempDir(), "myelin.yaml")
		if err := os.WriteFile(path, []byte(strings.Join(yaml, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(path, func(string) (string, bool) { return "", false })
		if err != nil {
			t.Fatalf("%s: its myelin.yaml does not load: %v", file, err)
		}
		if cfg.ServerName != "example.org" || cfg.WellKnown.Server != "matrix.example.org:443" ||
			cfg.WellKnown.ClientBaseURL != "https://matrix.example.org" || !cfg.HTTP.TrustForwardedFor || cfg.Listen.Federation != "" {
			t.Errorf("%s: its myelin.yaml does not delegate example.org to matrix.example.org behind the proxy: %+v %+v", file, cfg.WellKnown, cfg.HTTP)
		}
		for _, path := range []string{"/_matrix", "/_synapse", "/.well-known/matrix"} {
			if !strings.Contains(string(raw), path) {
				t.Errorf("%s does not pass %s to Myelin", file, path)
			}
		}
	}
}
