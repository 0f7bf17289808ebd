package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// envMap turns a map into Load's env lookup, so that the host's own
// MYELIN_* variables never leak into a test.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// pemFiles makes two files that exist, for the TLS settings (Validate only
// checks that they exist; the server loads them).
func pemFiles(t *testing.T) (cert, key string) {
	t.Helper()
	return writeFile(t, "cert.pem", "cert"), writeFile(t, "key.pem", "key")
}

func TestDefaultValidates(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestLoadWithoutFileIsDefault(t *testing.T) {
	cfg, err := Load("", envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
		t.Fatalf("Load(\"\") = %+v, want Default() %+v", cfg, Default())
	}
}

// TestDefaultYAMLIsDefault keeps `myelin config` honest: the commented file
// it prints must describe exactly the built-in defaults.
func TestDefaultYAMLIsDefault(t *testing.T) {
	if !strings.Contains(DefaultYAML(), "server_name:") {
		t.Fatalf("DefaultYAML() looks empty: %q", DefaultYAML())
	}
	cfg, err := Load(writeFile(t, "myelin.yaml", DefaultYAML()), envMap(nil))
	if err != nil {
		t.Fatalf("Load(DefaultYAML) = %v", err)
	}
	if want := Default(); !reflect.DeepEqual(cfg, want) {
		t.Fatalf("default.yaml differs from Default():\n got  %+v\n want %+v", cfg, want)
	}
}

func TestEmptyFileIsAccepted(t *testing.T) {
	for name, content := range map[string]string{"empty": "", "comment only": "# nothing\n", "blank lines": "\n\n"} {
		t.Run(name, func(t *testing.T) {
			cfg, err := Load(writeFile(t, "empty.yaml", content), envMap(nil))
			if err != nil {
				t.Fatalf("Load(%q) = %v", content, err)
			}
			if !reflect.DeepEqual(cfg, Default()) {
				t.Fatalf("Load(%q) = %+v, want Default()", content, cfg)
			}
		})
	}
}

func TestFileSetsValues(t *testing.T) {
	cfg, err := Load(writeFile(t, "c.yaml", `
server_name: example.org
auth:
  bcrypt_cost: 5
  login_token_lifetime: 30s
rate_limit:
  exempt_users: ["@bot:example.org"]
`), envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.ServerName = "example.org"
	want.Auth.BcryptCost = 5
	want.Auth.LoginTokenLifetime = 30e9
	want.RateLimit.ExemptUsers = []string{"@bot:example.org"}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
}

func TestUnknownKeyIsRejected(t *testing.T) {
	for _, tt := range []struct{ content, key string }{
		{"server_nmae: example.org\n", "server_nmae"},
		{"listen:\n  clinet: 127.0.0.1:8008\n", "clinet"},
	} {
		t.Run(tt.key, func(t *testing.T) {
			_, err := Load(writeFile(t, "c.yaml", tt.content), envMap(nil))
			if err == nil {
				t.Fatalf("Load(%q) accepted an unknown key", tt.content)
			}
			if !strings.Contains(err.Error(), tt.key) {
				t.Errorf("error %q does not name the unknown key %s", err, tt.key)
			}
		})
	}
}

func TestMissingFileFails(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), envMap(nil)); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}

// TestEnvOverrides checks every MYELIN_* variable: each sets exactly its
// setting and nothing else. A variable added to EnvVars without a row here
// fails the test.
func TestEnvOverrides(t *testing.T) {
	cert, key := pemFiles(t)
	tests := []struct {
		name  string
		value string
		// extra variables the override needs to validate.
		extra map[string]string
		// set applies the expected change to Default().
		set func(c *Config)
	}{
		{"MYELIN_SERVER_NAME", "example.org:8448", nil, func(c *Config) { c.ServerName = "example.org:8448" }},
		{"MYELIN_DATA_DIR", "/var/lib/myelin", nil, func(c *Config) { c.DataDir = "/var/lib/myelin" }},
		{"MYELIN_DATABASE_URL", "postgres://myelin@db/myelin", nil, func(c *Config) { c.Database.URL = "postgres://myelin@db/myelin" }},
		{"MYELIN_CLIENT_LISTEN", "0.0.0.0:8009", nil, func(c *Config) { c.Listen.Client = "0.0.0.0:8009" }},
		{"MYELIN_FEDERATION_LISTEN", ":8448", nil, func(c *Config) { c.Listen.Federation = ":8448" }},
		{"MYELIN_METRICS_LISTEN", "127.0.0.1:9090", nil, func(c *Config) { c.Listen.Metrics = "127.0.0.1:9090" }},
		{"MYELIN_PPROF_ADDR", "127.0.0.1:6060", nil, func(c *Config) { c.Listen.Pprof = "127.0.0.1:6060" }},
		{"MYELIN_HEAP_FLOOR_MIB", "0", nil, func(c *Config) { c.Memory.HeapFloorMiB = 0 }},
		{"MYELIN_EVENT_CACHE_MIB", "64", nil, func(c *Config) { c.Memory.EventCacheMiB = 64 }},
		{"MYELIN_SQLITE_CACHE_KIB", "8192", nil, func(c *Config) { c.Memory.SQLiteCacheKiB = 8192 }},
		{"MYELIN_DATABASE_MAX_OPEN_CONNS", "4", nil, func(c *Config) { c.Database.MaxOpenConns = 4 }},
		{"MYELIN_STATE_CACHE_MIB", "64", nil, func(c *Config) { c.Memory.StateCacheMiB = 64 }},
		{"MYELIN_SYNC_CACHE_MIB", "32", nil, func(c *Config) { c.Memory.SyncCacheMiB = 32 }},
		{"MYELIN_LOOKUP_CACHE_MIB", "16", nil, func(c *Config) { c.Memory.LookupCacheMiB = 16 }},
		{"MYELIN_TLS_CERT", cert, map[string]string{"MYELIN_TLS_KEY": key}, func(c *Config) { c.Listen.TLSCert, c.Listen.TLSKey = cert, key }},
		{"MYELIN_TLS_KEY", key, map[string]string{"MYELIN_TLS_CERT": cert}, func(c *Config) { c.Listen.TLSCert, c.Listen.TLSKey = cert, key }},
		{"MYELIN_REGISTRATION_SHARED_SECRET", "s3cret", nil, func(c *Config) { c.Registration.SharedSecret = "s3cret" }},
		{"MYELIN_OPEN_REGISTRATION", "true", nil, func(c *Config) { c.Registration.Open = true }},
		{"MYELIN_REGISTRATION_REQUIRES_TOKEN", "yes", nil, func(c *Config) { c.Registration.RequireToken = true }},
		{"MYELIN_ALLOW_GUESTS", "1", nil, func(c *Config) { c.Registration.AllowGuests = true }},
		{"MYELIN_RATE_LIMIT", "off", nil, func(c *Config) { c.RateLimit.Enabled = false }},
		{"MYELIN_BCRYPT_COST", "4", nil, func(c *Config) { c.Auth.BcryptCost = 4 }},
		{"MYELIN_LOG_LEVEL", "debug", nil, func(c *Config) { c.Log.Level = "debug" }},
		{"MYELIN_LOG_FORMAT", "json", nil, func(c *Config) { c.Log.Format = "json" }},
		{"MYELIN_PUBLIC_BASEURL", "https://matrix.example.org", nil, func(c *Config) { c.WellKnown.ClientBaseURL = "https://matrix.example.org" }},
		{"MYELIN_FEDERATION", "off", nil, func(c *Config) { c.Federation.Enabled = false }},
		{"MYELIN_FEDERATION_CA_FILE", cert, nil, func(c *Config) { c.Federation.CAFile = cert }},
		{"MYELIN_FEDERATION_ADDRESSES", "hs1.test=127.0.0.11:8448, hs2.test=127.0.0.12:8448", nil, func(c *Config) {
			c.Federation.Addresses = map[string]string{"hs1.test": "127.0.0.11:8448", "hs2.test": "127.0.0.12:8448"}
		}},
		{"MYELIN_PRESENCE", "off", nil, func(c *Config) { c.Presence.Enabled = false }},
		{"MYELIN_POLICY_SERVER_FAIL_OPEN", "true", nil, func(c *Config) { c.Federation.PolicyServerFailOpen = true }},
		{"MYELIN_OUTBOUND_ALLOW", "127.0.0.0/8, ::1/128", nil, func(c *Config) { c.Outbound.Allow = []string{"127.0.0.0/8", "::1/128"} }},
		{"MYELIN_OUTBOUND_DENY", "203.0.113.0/24,8.8.8.8/32", nil, func(c *Config) { c.Outbound.Deny = []string{"203.0.113.0/24", "8.8.8.8/32"} }},
		{"MYELIN_FEDERATION_DENY", "2001:db8::/32", nil, func(c *Config) { c.Federation.Deny = []string{"2001:db8::/32"} }},
		{"MYELIN_SQLITE_SYNCHRONOUS", "normal", nil, func(c *Config) { c.Database.SQLiteSynchronous = "normal" }},
		{"MYELIN_DEFAULT_ROOM_VERSION", "11", nil, func(c *Config) { c.Rooms.DefaultVersion = "11" }},
		{"MYELIN_MAX_EVENT_DELAY_MS", "0", nil, func(c *Config) { c.Rooms.MaxEventDelayMS = 0 }},
		{"MYELIN_THREAD_SUBSCRIPTIONS", "on", nil, func(c *Config) { c.Rooms.ThreadSubscriptions = true }},
		{"MYELIN_ACME_DOMAIN", "matrix.example.org", map[string]string{"MYELIN_CLIENT_TLS": "true"}, func(c *Config) {
			c.ACME.Domain, c.Listen.ClientTLS = "matrix.example.org", true
		}},
		{"MYELIN_ACME_EMAIL", "admin@example.org", nil, func(c *Config) { c.ACME.Email = "admin@example.org" }},
		{"MYELIN_ACME_DIRECTORY_URL", "https://acme.example.org/dir", nil, func(c *Config) { c.ACME.DirectoryURL = "https://acme.example.org/dir" }},
		{"MYELIN_ACME_CA_FILE", "/etc/ca.pem", nil, func(c *Config) { c.ACME.CAFile = "/etc/ca.pem" }},
		{"MYELIN_ACME_HTTP_LISTEN", ":80", map[string]string{"MYELIN_ACME_DOMAIN": "m.example.org", "MYELIN_CLIENT_TLS": "true"}, func(c *Config) {
			c.ACME.HTTPListen, c.ACME.Domain, c.Listen.ClientTLS = ":80", "m.example.org", true
		}},
		{"MYELIN_CLIENT_TLS", "true", map[string]string{"MYELIN_TLS_CERT": cert, "MYELIN_TLS_KEY": key}, func(c *Config) {
			c.Listen.ClientTLS, c.Listen.TLSCert, c.Listen.TLSKey = true, cert, key
		}},
		{"MYELIN_RTC_FOCI", `[{"type":"livekit","livekit_service_url":"https://jwt.example.org"}]`, nil, func(c *Config) {
			c.WellKnown.RTCFoci = []RTCFocus{{Type: "livekit", LiveKitServiceURL: "https://jwt.example.org"}}
		}},
		{"MYELIN_SERVER_NOTICES_LOCALPART", "notices", nil, func(c *Config) { c.ServerNotices.SystemMxidLocalpart = "notices" }},
		{"MYELIN_REPORTS_FORWARD_TO_MODERATORS", "on", map[string]string{"MYELIN_SERVER_NOTICES_LOCALPART": "notices"}, func(c *Config) {
			c.Reports.ForwardToModerators, c.ServerNotices.SystemMxidLocalpart = true, "notices"
		}},
		{"MYELIN_REPUTATION_FEEDS", "#spam:x.org=0.5, !abc:y.org,allow:#friends:x.org=2", nil, func(c *Config) {
			c.Reputation.Feeds = []ReputationFeed{{Room: "#spam:x.org", Weight: 0.5}, {Room: "!abc:y.org", Weight: 1}, {Room: "#friends:x.org", Weight: 2, Allow: true}}
		}},
		{"MYELIN_APPSERVICE_FILES", "/a/wa.yaml, ,/b/sig.yaml", nil, func(c *Config) { c.AppServices.Files = []string{"/a/wa.yaml", "/b/sig.yaml"} }},
		{"MYELIN_REPUTATION_REPUBLISH_ALIAS", "#blend:x.org", nil, func(c *Config) { c.Reputation.Republish.Alias = "#blend:x.org" }},
		{"MYELIN_REPUTATION_REPUBLISH_MODE", "hashed", map[string]string{"MYELIN_REPUTATION_REPUBLISH_ALIAS": "#blend:x.org"}, func(c *Config) {
			c.Reputation.Republish = ReputationRepublish{Alias: "#blend:x.org", Mode: "hashed"}
		}},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.name] = true
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{tt.name: tt.value}
			for k, v := range tt.extra {
				env[k] = v
			}
			cfg, err := Load("", envMap(env))
			if err != nil {
				t.Fatalf("Load with %s=%s: %v", tt.name, tt.value, err)
			}
			want := Default()
			tt.set(want)
			if !reflect.DeepEqual(cfg, want) {
				t.Fatalf("%s=%s:\n got  %+v\n want %+v", tt.name, tt.value, cfg, want)
			}
		})
	}
	for _, name := range EnvVars {
		if !covered[name] {
			t.Errorf("EnvVars has %s but TestEnvOverrides has no row for it", name)
		}
	}
	if len(covered) != len(EnvVars) {
		t.Errorf("TestEnvOverrides covers %d variables, EnvVars lists %d", len(covered), len(EnvVars))
	}
}

func TestEnvBooleanSpellings(t *testing.T) {
	for v, want := range map[string]bool{
		"true": true, "TRUE": true, "1": true, "yes": true, "on": true,
		"false": false, "0": false, "no": false, "off": false, "False": false,
	} {
		cfg, err := Load("", envMap(map[string]string{"MYELIN_OPEN_REGISTRATION": v}))
		if err != nil {
			t.Fatalf("MYELIN_OPEN_REGISTRATION=%s: %v", v, err)
		}
		if cfg.Registration.Open != want {
			t.Errorf("MYELIN_OPEN_REGISTRATION=%s: open = %v, want %v", v, cfg.Registration.Open, want)
		}
	}
	for v, want := range map[string]bool{"on": true, "ON": true, "true": true, "off": false, "no": false, "0": false} {
		cfg, err := Load("", envMap(map[string]string{"MYELIN_RATE_LIMIT": v}))
		if err != nil {
			t.Fatalf("MYELIN_RATE_LIMIT=%s: %v", v, err)
		}
		if cfg.RateLimit.Enabled != want {
			t.Errorf("MYELIN_RATE_LIMIT=%s: enabled = %v, want %v", v, cfg.RateLimit.Enabled, want)
		}
	}
}

func TestEnvOverridesFile(t *testing.T) {
	path := writeFile(t, "c.yaml", "server_name: file.example\nregistration:\n  open: true\nauth:\n  bcrypt_cost: 6\n")
	cfg, err := Load(path, envMap(map[string]string{
		"MYELIN_SERVER_NAME": "env.example", "MYELIN_OPEN_REGISTRATION": "false",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "env.example" {
		t.Errorf("server_name = %q, want the environment's env.example", cfg.ServerName)
	}
	if cfg.Registration.Open {
		t.Error("registration.open = true, want the environment's false")
	}
	if cfg.Auth.BcryptCost != 6 {
		t.Errorf("auth.bcrypt_cost = %d, want the file's 6 (no variable set)", cfg.Auth.BcryptCost)
	}
}

func TestInvalidValuesNameTheField(t *testing.T) {
	cert, _ := pemFiles(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		name  string
		yaml  string
		env   map[string]string
		field string
	}{
		{"server_name", "server_name: bad name!\n", nil, "server_name"},
		{"listen.client", "listen:\n  client: \"8008\"\n", nil, "listen.client"},
		{"listen.client port", "listen:\n  client: 127.0.0.1:70000\n", nil, "listen.client"},
		{"listen.metrics", "listen:\n  metrics: metrics\n", nil, "listen.metrics"},
		{"database.url", "database:\n  url: mysql://x\n", nil, "database.url"},
		{"database.sqlite_synchronous", "database:\n  sqlite_synchronous: \"off\"\n", nil, "database.sqlite_synchronous"},
		{"tls_cert without tls_key", "listen:\n  tls_cert: " + cert + "\n", nil, "listen.tls_cert"},
		{"tls_cert missing", "", map[string]string{"MYELIN_TLS_CERT": missing, "MYELIN_TLS_KEY": cert}, "listen.tls_cert"},
		{"bcrypt_cost", "auth:\n  bcrypt_cost: 3\n", nil, "auth.bcrypt_cost"},
		{"bcrypt_cost env", "", map[string]string{"MYELIN_BCRYPT_COST": "32"}, "auth.bcrypt_cost"},
		{"bcrypt_cost not a number", "", map[string]string{"MYELIN_BCRYPT_COST": "cheap"}, "MYELIN_BCRYPT_COST"},
		{"rooms.default_version", "rooms:\n  default_version: \"13\"\n", nil, "rooms.default_version"},
		{"log.level", "log:\n  level: loud\n", nil, "log.level"},
		{"log.format", "log:\n  format: xml\n", nil, "log.format"},
		{"data_dir", "data_dir: \"\"\n", nil, "data_dir"},
		{"rate_limit.login", "rate_limit:\n  login:\n    burst: 0\n", nil, "rate_limit.login"},
		{"rate_limit.report", "rate_limit:\n  report:\n    per_second: -1\n", nil, "rate_limit.report"},
		{"reports.forward_to_moderators without notices", "reports:\n  forward_to_moderators: true\n", nil, "reports.forward_to_moderators"},
		{"media.max_upload_bytes", "media:\n  max_upload_bytes: 0\n", nil, "media.max_upload_bytes"},
		{"media.thumbnail_sizes", "media:\n  thumbnail_sizes:\n    - {width: 32, height: 32, method: stretch}\n", nil, "media.thumbnail_sizes"},
		{"media.url_preview.ip_range_whitelist", "media:\n  url_preview:\n    ip_range_whitelist: [10.0.0.1]\n", nil, "media.url_preview.ip_range_whitelist"},
		{"MYELIN_OPEN_REGISTRATION", "", map[string]string{"MYELIN_OPEN_REGISTRATION": "maybe"}, "MYELIN_OPEN_REGISTRATION"},
		{"MYELIN_RATE_LIMIT", "", map[string]string{"MYELIN_RATE_LIMIT": "sometimes"}, "MYELIN_RATE_LIMIT"},
		{"outbound.allow", "outbound:\n  allow: [127.0.0.1/33]\n", nil, "outbound.allow"},
		{"outbound.deny", "outbound:\n  deny: [\"fe80::/10%eth0\"]\n", nil, "outbound.deny"},
		{"federation.deny", "federation:\n  deny: [example.org]\n", nil, "federation.deny"},
		{"MYELIN_OUTBOUND_ALLOW", "", map[string]string{"MYELIN_OUTBOUND_ALLOW": "127.0.0.0/8,::1"}, "MYELIN_OUTBOUND_ALLOW"},
		{"MYELIN_OUTBOUND_DENY", "", map[string]string{"MYELIN_OUTBOUND_DENY": "10.0.0.0/40"}, "MYELIN_OUTBOUND_DENY"},
		{"MYELIN_FEDERATION_DENY", "", map[string]string{"MYELIN_FEDERATION_DENY": "nope"}, "MYELIN_FEDERATION_DENY"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.yaml != "" {
				path = writeFile(t, "c.yaml", tt.yaml)
			}
			cfg, err := Load(path, envMap(tt.env))
			if err == nil {
				t.Fatalf("Load accepted it: %+v", cfg)
			}
			if !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q does not name %s", err, tt.field)
			}
		})
	}
}

func TestValidateServerName(t *testing.T) {
	for _, name := range []string{"example.org", "example.org:8448", "1.2.3.4", "1.2.3.4:8448", "[::1]", "[::1]:8448", "localhost", "my-host.example.org"} {
		if err := ValidateServerName(name); err != nil {
			t.Errorf("ValidateServerName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", "exa mple", "host:99999", "host:0", "host:", "host:port", "[::1", "[::1]:", "[zz]", ":8448", "bad/name", "bad_name"} {
		if err := ValidateServerName(name); err == nil {
			t.Errorf("ValidateServerName(%q) = nil, want an error", name)
		}
	}
}

func TestDerivedPaths(t *testing.T) {
	c := Default()
	c.DataDir = "/data"
	if got := c.DatabaseURL(); got != filepath.Join("/data", "myelin.db") {
		t.Errorf("DatabaseURL() = %q", got)
	}
	if got := c.SigningKeyPath(); got != filepath.Join("/data", "signing.key") {
		t.Errorf("SigningKeyPath() = %q", got)
	}
	c.Database.URL = "postgres://x@y/z"
	c.SigningKey = "/etc/myelin/key"
	if c.DatabaseURL() != "postgres://x@y/z" || c.SigningKeyPath() != "/etc/myelin/key" {
		t.Errorf("explicit paths not used: %q %q", c.DatabaseURL(), c.SigningKeyPath())
	}
}

func TestReputationConfigRefused(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"bad weight":          {"MYELIN_REPUTATION_FEEDS": "#a:x=heavy"},
		"not a room":          {"MYELIN_REPUTATION_FEEDS": "spam.example.org"},
		"below zero":          {"MYELIN_REPUTATION_FEEDS": "#a:x=-1"},
		"bad republish mode":  {"MYELIN_REPUTATION_REPUBLISH_ALIAS": "#b:x", "MYELIN_REPUTATION_REPUBLISH_MODE": "secret"},
		"republish not alias": {"MYELIN_REPUTATION_REPUBLISH_ALIAS": "!room:x"},
		"no localpart":        {"MYELIN_REPUTATION_FEEDS": ""},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Load("", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
			if name == "no localpart" {
				// An empty list is no feeds, which is fine.
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "reputation") && !strings.Contains(err.Error(), "REPUTATION") {
				t.Fatalf("Load = %v, want a reputation error", err)
			}
		})
	}
}
