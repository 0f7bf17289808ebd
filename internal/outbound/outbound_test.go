package outbound

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"testing"
	"time"
)

// TestPermits: every refused range, the IPv6 forms wrapping an IPv4
// address, zones, and the allow list's exemption.
func TestPermits(t *testing.T) {
	def := Default()
	allowLoopback, err := New([]string{"8.8.4.0/24"}, []string{"127.0.0.0/8", "::1/128", "10.1.2.3/32"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		addr           string
		def, allowLoop bool
	}{
		{"8.8.8.8", true, true},
		{"1.1.1.1", true, true},
		{"2606:4700:4700::1111", true, true},
		{"::ffff:8.8.8.8", true, true}, // IPv4-mapped public: the IPv4 address
		{"127.0.0.1", false, true},
		{"127.255.255.254", false, true},
		{"::1", false, true},
		{"::ffff:127.0.0.1", false, true}, // IPv4-mapped loopback
		{"0.0.0.0", false, false},
		{"0.1.2.3", false, false},
		{"::", false, false},
		{"10.0.0.1", false, false},
		{"10.1.2.3", false, true}, // a bare address on the allow list
		{"172.16.0.1", false, false},
		{"172.31.255.255", false, false},
		{"172.32.0.1", true, true},
		{"192.168.1.1", false, false},
		{"100.64.0.1", false, false},
		{"100.127.255.255", false, false},
		{"100.128.0.1", true, true},
		{"169.254.169.254", false, false},
		{"192.0.0.8", false, false},
		{"192.0.2.1", false, false},
		{"192.88.99.1", false, false},
		{"198.18.0.1", false, false},
		{"198.19.255.255", false, false},
		{"198.51.100.7", false, false},
		{"203.0.113.9", false, false},
		{"224.0.0.251", false, false},
		{"239.255.255.250", false, false},
		{"240.0.0.1", false, false},
		{"255.255.255.255", false, false},
		{"8.8.4.4", true, false}, // the extra deny list
		{"::ffff:10.0.0.1", false, false},
		{"::ffff:169.254.169.254", false, false},
		{"::ffff:0:127.0.0.1", false, false}, // IPv4-translated
		{"::ffff:0:8.8.8.8", false, false},
		{"::127.0.0.1", false, false},      // IPv4-compatible
		{"64:ff9b::7f00:1", false, false},  // NAT64 of 127.0.0.1
		{"64:ff9b::808:808", false, false}, // NAT64 of 8.8.8.8: the translator may be inside
		{"64:ff9b:1::a00:1", false, false}, // local-use NAT64
		{"2002:7f00:1::1", false, false},   // 6to4 wrapping 127.0.0.1
		{"2002:a00:1::1", false, false},    // 6to4 wrapping 10.0.0.1
		{"2001::1", false, false},          // Teredo
		{"2001:db8::1", false, false},
		{"3fff::1", false, false},
		{"100::1", false, false},
		{"fc00::1", false, false},
		{"fd12:3456::1", false, false},
		{"fe80::1", false, false},
		{"fec0::1", false, false},
		{"ff02::1", false, false},
		{"::1%lo", false, false}, // zones, even of allowed addresses
		{"fe80::1%eth0", false, false},
		{"2606:4700:4700::1111%eth0", false, false},
	} {
		ip := netip.MustParseAddr(tt.addr)
		if got := def.Permits(ip); got != tt.def {
			t.Errorf("default policy: Permits(%s) = %v, want %v", tt.addr, got, tt.def)
		}
		if got := allowLoopback.Permits(ip); got != tt.allowLoop {
			t.Errorf("allow-listed policy: Permits(%s) = %v, want %v", tt.addr, got, tt.allowLoop)
		}
	}
	if def.Permits(netip.Addr{}) {
		t.Error("the zero address is permitted")
	}
}

// TestWith: a derived policy keeps its parent's lists and adds its own.
func TestWith(t *testing.T) {
	base, _ := New([]string{"8.8.8.0/24"}, []string{"127.0.0.1/32"})
	fed, err := base.With([]string{"1.1.1.1/32"}, []string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"127.0.0.1": true, "10.9.9.9": true, "8.8.8.8": false, "1.1.1.1": false, "9.9.9.9": true, "192.168.0.1": false,
	} {
		if got := fed.Permits(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Permits(%s) = %v, want %v", addr, got, want)
		}
	}
	if !base.Permits(netip.MustParseAddr("1.1.1.1")) || base.Permits(netip.MustParseAddr("10.9.9.9")) {
		t.Error("With changed its parent")
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := ParsePrefixes([]string{"127.0.0.0/8", " ::1/128 ", "10.1.2.3/32", "10.1.2.3/8", ""})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.0/8", "::1/128", "10.1.2.3/32", "10.0.0.0/8"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("prefix %d = %s, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"127.0.0.1/33", "10.1.2.3", "localhost", "::1%lo", "fe80::/10%eth0", "1.2.3"} {
		if _, err := ParsePrefixes([]string{bad}); err == nil {
			t.Errorf("ParsePrefixes(%q) accepted", bad)
		}
	}
}

// TestControl: the dial-time check sees the address dialled, zone
// included.
func TestControl(t *testing.T) {
	p := Default()
	for addr, ok := range map[string]bool{
		"8.8.8.8:443": true, "127.0.0.1:80": false, "[::1]:80": false, "[::1%lo]:80": false,
		"[fe80::1%eth0]:443": false, "[::ffff:10.0.0.1]:80": false, "not an address": false,
	} {
		err := p.Control("tcp", addr, nil)
		if (err == nil) != ok || (err != nil && !errors.Is(err, ErrRefused)) {
			t.Errorf("Control(%s) = %v, want allowed %v", addr, err, ok)
		}
	}
}

// TestClientAtDialTime: the client refuses a refused address even when
// no URL check ran before (a name that resolved to a public address when
// checked and to a private one when dialled, DNS rebinding), and on
// redirects; the allow list lets it through.
func TestClientAtDialTime(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/away" {
			// 127.0.0.2 is loopback too, but off the allow list below.
			_, port, _ := net.SplitHostPort(r.Host)
			http.Redirect(w, r, "http://127.0.0.2:"+port+"/", http.StatusFound)
			return
		}
		io.WriteString(w, "secret")
	}))
	defer srv.Close()
	_, err := Default().Client(ClientOptions{Timeout: 5 * time.Second}).Get(srv.URL)
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("dial to %s: %v, want ErrRefused", srv.URL, err)
	}
	allowed, _ := New(nil, []string{"127.0.0.1/32"})
	c := allowed.Client(ClientOptions{Timeout: 5 * time.Second, MaxRedirects: 3})
	resp, err := c.Get(srv.URL)
	if err != nil {
		t.Fatalf("allow-listed dial: %v", err)
	}
	resp.Body.Close()
	if _, err := c.Get(srv.URL + "/away"); !errors.Is(err, ErrRefused) {
		t.Fatalf("redirect to 127.0.0.2: %v, want ErrRefused", err)
	}
}

// TestCheckURL: schemes, literal hosts (zoned ones too) and names
// resolving to refused addresses.
func TestCheckURL(t *testing.T) {
	p := Default()
	for raw, ok := range map[string]bool{
		"http://127.0.0.1/":           false,
		"http://[::1]:8080/":          false,
		"http://[::1%25x]/":           false,
		"http://[fe80::1%25eth0]/":    false,
		"http://[::ffff:127.0.0.1]/":  false,
		"http://localhost/":           false,
		"http://169.254.169.254/":     false,
		"ftp://8.8.8.8/":              false,
		"file:///etc/passwd":          false,
		"http://8.8.8.8/":             true,
		"https://[2606:4700::1111]/x": true,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		err = p.CheckURL(context.Background(), u)
		if (err == nil) != ok {
			t.Errorf("CheckURL(%s) = %v, want allowed %v", raw, err, ok)
		}
	}
}

// FuzzParsePrefixes: whatever a configuration holds, parsing never
// panics, and a parsed prefix holds no zone and is masked.
func FuzzParsePrefixes(f *testing.F) {
	for _, s := range []string{"127.0.0.0/8", "::1/128", "10.1.2.3", "::1%lo", "fe80::/10", "1.2.3.4/99", "::ffff:1.2.3.4/104"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParsePrefixes([]string{s})
		if err != nil {
			return
		}
		for _, p := range ps {
			if p.Addr().Zone() != "" || p != p.Masked() {
				t.Fatalf("%q parsed to %v", s, p)
			}
		}
	})
}

// FuzzControl: the dial-time check never panics and never lets a zoned
// or refused address through, whatever the dialled address string.
func FuzzControl(f *testing.F) {
	for _, s := range []string{"127.0.0.1:80", "[::1%25x]:80", "[fe80::1%eth0]:443", "8.8.8.8:443", "[::ffff:0:7f00:1]:1"} {
		f.Add(s)
	}
	p := Default()
	f.Fuzz(func(t *testing.T, s string) {
		if p.Control("tcp", s, nil) != nil {
			return
		}
		ap, err := netip.ParseAddrPort(s)
		if err != nil || ap.Addr().Zone() != "" || ap.Addr().Unmap().IsLoopback() || ap.Addr().Unmap().IsPrivate() {
			t.Fatalf("Control let %q through", s)
		}
	})
}
