package appservice

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodRegistration = `
id: whatsapp
url: http://127.0.0.1:29318
as_token: secret_as
hs_token: secret_hs
sender_localpart: whatsappbot
rate_limited: false
receive_ephemeral: true
namespaces:
  users:
    - exclusive: true
      regex: '@whatsapp_[0-9]+:example\.org'
  aliases:
    - exclusive: false
      regex: '#whatsapp_.*:example\.org'
  rooms: []
`

func TestParseRegistration(t *testing.T) {
	reg, err := Parse([]byte(goodRegistration))
	if err != nil {
		t.Fatal(err)
	}
	if reg.ID != "whatsapp" || reg.URL != "http://127.0.0.1:29318" || reg.RateLimited || !reg.ReceiveEphemeral {
		t.Fatalf("parsed %+v", reg)
	}
	r := NewRegistry("example.org", []*Registration{reg})
	for _, tt := range []struct {
		user      string
		exclusive bool
	}{
		{"@whatsapp_123:example.org", true},
		{"@whatsappbot:example.org", true},
		// Anchored: a match inside the ID is not one.
		{"@whatsapp_123:example.org.evil", false},
		{"@xwhatsapp_123:example.org", false},
		{"@whatsapp_abc:example.org", false},
	} {
		if got := r.ExclusiveUser(tt.user) != nil; got != tt.exclusive {
			t.Errorf("ExclusiveUser(%s) = %v, want %v", tt.user, got, tt.exclusive)
		}
	}
	if r.ExclusiveAlias("#whatsapp_x:example.org") != nil {
		t.Error("a non-exclusive alias namespace is claimed exclusively")
	}
	if len(r.AliasInterested("#whatsapp_x:example.org")) != 1 {
		t.Error("the service is not asked about its aliases")
	}
	if reg, _ := Parse([]byte(strings.Replace(goodRegistration, "rate_limited: false\n", "", 1))); !reg.RateLimited {
		t.Error("rate_limited defaults to false, want true")
	}
}

func TestParseRegistrationNamesTheField(t *testing.T) {
	for _, tt := range []struct{ edit, field string }{
		{"id: whatsapp\n>", "id"},
		{"as_token: secret_as\n>", "as_token"},
		{"hs_token: secret_hs\n>", "hs_token"},
		{"sender_localpart: whatsappbot\n>sender_localpart: '@bot:x'\n", "sender_localpart"},
		{"url: http://127.0.0.1:29318\n>url: ftp://x\n", "url"},
		{"regex: '@whatsapp_[0-9]+:example\\.org'\n>regex: '(['\n", "namespaces.users[0].regex"},
		{"hs_token: secret_hs\n>hs_token: secret_as\n", "hs_token"},
	} {
		old, repl, _ := strings.Cut(tt.edit, ">")
		doc := strings.Replace(goodRegistration, old, repl, 1)
		if doc == goodRegistration {
			t.Fatalf("edit %q changed nothing", tt.edit)
		}
		_, err := Parse([]byte(doc))
		if err == nil || !strings.HasPrefix(err.Error(), tt.field+":") {
			t.Errorf("edit %q: error %v, want one naming %s", tt.edit, err, tt.field)
		}
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.yaml"), filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte(goodRegistration), 0o600)
	os.WriteFile(bad, []byte(strings.Replace(goodRegistration, "id: whatsapp", "id: other\nas_token: x\n", 1)), 0o600)
	if _, err := Load([]string{good}); err != nil {
		t.Fatal(err)
	}
	_, err := Load([]string{good, bad})
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Load: %v, want an error naming %s", err, bad)
	}
	_, err = Load([]string{good, good})
	if err == nil || !strings.Contains(err.Error(), "id:") {
		t.Fatalf("a duplicate id: %v", err)
	}
	_, err = Load([]string{filepath.Join(dir, "missing.yaml")})
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("a missing file: %v", err)
	}
}

// FuzzRegistration: whatever a registration file holds, Parse answers a
// registration or an error, never a panic, and a registration it
// accepts has what the sender and the authenticator rely on.
func FuzzRegistration(f *testing.F) {
	f.Add([]byte(goodRegistration))
	f.Add([]byte("id: x\nas_token: a\nhs_token: b\nsender_localpart: c\nurl: null\n"))
	f.Add([]byte("namespaces: {users: [{regex: '(?i)', exclusive: yes}]}"))
	f.Add([]byte("- [}"))
	f.Add([]byte(goodRegistration + "org.matrix.msc3202: true\npush_ephemeral: true\nio.element.msc4190: true\n"))
	f.Add([]byte(goodRegistration + "de.sorunome.msc2409.push_ephemeral: [1]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		reg, err := Parse(data)
		if err != nil {
			return
		}
		if reg.ID == "" || reg.ASToken == "" || reg.HSToken == "" || reg.SenderLocalpart == "" || reg.ASToken == reg.HSToken {
			t.Fatalf("accepted an incomplete registration %+v", reg)
		}
		r := NewRegistry("example.org", []*Registration{reg})
		_ = r.ExclusiveUser("@a:example.org")
		_ = r.ExclusiveAlias("#a:example.org")
		if _, err := r.ActAs(reg, ""); err != nil {
			t.Fatalf("the sender itself is refused: %v", err)
		}
	})
}

// TestParseEphemeralFlags: receive_ephemeral and its two unstable names
// (MSC2409's de.sorunome.msc2409.push_ephemeral and the older
// push_ephemeral) all turn ephemeral data on; org.matrix.msc3202 turns
// the encryption extensions on; neither is on by default.
func TestParseEphemeralFlags(t *testing.T) {
	base := strings.Replace(goodRegistration, "receive_ephemeral: true\n", "", 1)
	for _, tt := range []struct {
		extra              string
		ephemeral, msc3202 bool
	}{
		{"", false, false},
		{"receive_ephemeral: true\n", true, false},
		{"de.sorunome.msc2409.push_ephemeral: true\n", true, false},
		{"push_ephemeral: true\n", true, false},
		{"org.matrix.msc3202: true\n", false, true},
		{"receive_ephemeral: true\norg.matrix.msc3202: true\n", true, true},
	} {
		reg, err := Parse([]byte(base + tt.extra))
		if err != nil {
			t.Fatalf("%q: %v", tt.extra, err)
		}
		if reg.ReceiveEphemeral != tt.ephemeral || reg.MSC3202 != tt.msc3202 {
			t.Errorf("%q: ephemeral %v msc3202 %v, want %v %v", tt.extra, reg.ReceiveEphemeral, reg.MSC3202, tt.ephemeral, tt.msc3202)
		}
		if reg.wantsEphemeral() != (tt.ephemeral || tt.msc3202) {
			t.Errorf("%q: wantsEphemeral = %v", tt.extra, reg.wantsEphemeral())
		}
	}
}
