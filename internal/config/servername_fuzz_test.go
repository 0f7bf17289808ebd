package config

import (
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// serverNameGrammar is the server-server spec's server name grammar
// (appendices, "Server Name"), written down independently of
// ValidateServerName: hostname [ ":" port ], port 1*5DIGIT, hostname an
// IPv4 literal, "[" IPv6address "]" (2*45 IPv6 characters) or a dns-name
// of 1*255 letters, digits, "-" and ".".
var serverNameGrammar = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Za-z.-]{1,255})(:[0-9]{1,5})?$`)

// FuzzValidateServerName: server names arrive in every identifier,
// X-Matrix header, mxc URI and federation path. ValidateServerName
// accepts only what the grammar allows, and everything the grammar
// allows with a usable port and a parseable IPv6 address.
func FuzzValidateServerName(f *testing.F) {
	for _, s := range []string{"example.org", "example.org:8448", "1.2.3.4", "1.2.3.4:80", "[::1]", "[::1]:8448",
		"[2001:db8::1]:443", "[::ffff:127.0.0.1]", "[::1%25lo]", "[fe80::1%eth0]", "[::1", "::1", "a:0", "a:65536",
		"a:+80", "a:-1", "[::1]:+1", "a: 80", "a:0080", "a:", ":80", "", "exa mple.org", "ex\x00ample.org", "\xff",
		"example.org.", "xn--bcher-kva.example", strings.Repeat("a", 256), "a:99999999999999999999", "[]", "[]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateServerName(name)
		m := serverNameGrammar.FindStringSubmatch(name)
		if err == nil && m == nil {
			t.Fatalf("ValidateServerName accepted %q, outside the spec's grammar", name)
		}
		if m == nil {
			return
		}
		usable := true
		if m[2] != "" {
			p, _ := strconv.Atoi(m[2][1:])
			usable = p >= 1 && p <= 65535
		}
		if strings.HasPrefix(m[1], "[") && net.ParseIP(strings.Trim(m[1], "[]")) == nil {
			usable = false
		}
		// Synapse's VALID_HOST_REGEX also refuses empty labels ("a..b",
		// ".a", "a."), which the grammar lets through and no resolver
		// can look up.
		if !strings.HasPrefix(m[1], "[") && slices.Contains(strings.Split(m[1], "."), "") {
			if err == nil {
				t.Fatalf("ValidateServerName accepted %q, which has an empty label", name)
			}
			usable = false
		}
		if usable && err != nil {
			t.Fatalf("ValidateServerName refused %q: %v", name, err)
		}
	})
}
