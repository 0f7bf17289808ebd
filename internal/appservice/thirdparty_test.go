package appservice

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseProtocol: whatever a service answers, the parser neither
// panics nor lets through what the client must not see: a kept answer
// re-encodes as valid UTF-8 JSON, with lists (never null), at most
// maxThirdPartyItems instances, each with a network_id and no instance
// ID of the service's making.
func FuzzParseProtocol(f *testing.F) {
	for _, s := range []string{
		`{"user_fields":["n"],"location_fields":[],"icon":"mxc://a/b","field_types":{"n":{"regexp":".*","placeholder":"x"}},"instances":[{"desc":"d","network_id":"n","fields":{"a":"b"}}]}`,
		`{"instances":[]}`, `{"instances":null}`, `{"instances":"x"}`, `{}`, `[]`, `null`, ``,
		`{"instances":[1,"x",null,{"network_id":""},{"network_id":"n","instance_id":"forged|x","fields":null}]}`,
		"{\"instances\":[{\"desc\":\"\xff\\u0000\",\"network_id\":\"n\"}]}",
		`{"field_types":{"a":1},"instances":[]}`,
		`{"instances":[{"network_id":"n","fields":{"deep":[[[[[[{"x":1e999}]]]]]]}}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProtocol(data)
		if err != nil {
			return
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("re-encoding %q: %v", data, err)
		}
		if !utf8.Valid(out) {
			t.Fatalf("invalid UTF-8 kept from %q", data)
		}
		if p.UserFields == nil || p.LocationFields == nil || p.Instances == nil || p.FieldTypes == nil {
			t.Fatalf("a nil list or map from %q", data)
		}
		if len(p.Instances) > maxThirdPartyItems {
			t.Fatalf("%d instances", len(p.Instances))
		}
		for _, in := range p.Instances {
			if in.NetworkID == "" || in.InstanceID != "" || in.Fields == nil {
				t.Fatalf("instance %+v kept from %q", in, data)
			}
		}
	})
}

// FuzzParseThirdPartyResults: a kept result always has the kind's
// Matrix ID, a protocol and fields, and re-encodes as valid UTF-8 JSON.
func FuzzParseThirdPartyResults(f *testing.F) {
	for _, s := range []string{
		`[{"userid":"@a:b","protocol":"irc","fields":{"n":"a"}}]`,
		`[{"alias":"#a:b","protocol":"irc","fields":{}}]`,
		`[{"userid":"@a:b","protocol":"irc"},{"userid":1,"protocol":"irc","fields":{}},{"protocol":"p","fields":{}},null,7,"x"]`,
		`[{"userid":"@a:b","protocol":"irc","fields":null}]`,
		"[{\"userid\":\"@\xfe:b\",\"protocol\":\"\\u0000\",\"fields\":{\"\xff\":\"\xff\"}}]",
		`{}`, `null`, ``, `[`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, user bool) {
		kind := ThirdPartyLocation
		if user {
			kind = ThirdPartyUser
		}
		res, err := ParseThirdPartyResults(kind, data)
		if err != nil {
			return
		}
		if len(res) > maxThirdPartyItems {
			t.Fatalf("%d results", len(res))
		}
		for _, r := range res {
			id := r.Alias
			if user {
				id = r.UserID
			}
			if id == "" || r.Fields == nil || (user && r.Alias != "") || (!user && r.UserID != "") {
				t.Fatalf("result %+v kept from %q", r, data)
			}
		}
		out, err := json.Marshal(res)
		if err != nil || !utf8.Valid(out) {
			t.Fatalf("re-encoding %q: %v %q", data, err, out)
		}
	})
}

// TestParseThirdPartyBounds: a service answering more than
// maxThirdPartyItems instances or results has the rest dropped.
func TestParseThirdPartyBounds(t *testing.T) {
	inst := `{"desc":"d","network_id":"n","fields":{}}`
	p, err := ParseProtocol([]byte(`{"instances":[` + strings.Repeat(inst+",", maxThirdPartyItems+5) + inst + `]}`))
	if err != nil || len(p.Instances) != maxThirdPartyItems {
		t.Fatalf("instances: %v, %d kept", err, len(p.Instances))
	}
	r := `{"userid":"@a:b","protocol":"p","fields":{}}`
	res, err := ParseThirdPartyResults(ThirdPartyUser, []byte(`[`+strings.Repeat(r+",", maxThirdPartyItems+5)+r+`]`))
	if err != nil || len(res) != maxThirdPartyItems {
		t.Fatalf("results: %v, %d kept", err, len(res))
	}
}

// TestThirdPartySlowService: a service that does not answer in time is
// left out, the others' answers are returned, and the client does not
// wait for the slow one longer than the timeout.
func TestThirdPartySlowService(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`[{"userid":"@irc_a:hs1.test","protocol":"irc","fields":{"n":"a"}}]`))
	}))
	defer fast.Close()
	regs := []*Registration{
		{ID: "slow", URL: slow.URL, HSToken: "h1", Protocols: []string{"irc"}},
		{ID: "fast", URL: fast.URL, HSToken: "h2", Protocols: []string{"irc"}},
	}
	tp := NewThirdParty(NewRegistry("hs1.test", regs), NewClient(), slog.New(slog.DiscardHandler))
	tp.timeout = 300 * time.Millisecond
	start := time.Now()
	res := tp.Lookup(context.Background(), ThirdPartyUser, "irc", url.Values{"n": {"a"}})
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the lookup waited %v for the slow service", took)
	}
	if len(res) != 1 || res[0].UserID != "@irc_a:hs1.test" {
		t.Fatalf("results %+v, want the fast service's", res)
	}
	if p := tp.Protocols(context.Background(), ""); len(p) != 0 {
		t.Fatalf("protocols %+v from services that answer none", p)
	}
}
