package membership

import (
	"encoding/json"
	"testing"
)

func TestInvitePermissionDecide(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		stable, msc4380, lists string
		inviter                string
		want                   InviteDecision
	}{
		{"nothing set", "", "", "", "@a:x.org", InviteAllowed},
		{"empty lists", "", "", `{}`, "@a:x.org", InviteAllowed},
		{"stable block", `{"default_action":"block"}`, "", "", "@a:x.org", InviteBlocked},
		{"unstable MSC4380 block", "", `{"default_action":"block"}`, "", "@a:x.org", InviteBlocked},
		{"stable block beats an MSC4155 allow", `{"default_action":"block"}`, "", `{"allowed_users":["@a:x.org"]}`, "@a:x.org", InviteBlocked},
		{"unknown default_action", `{"default_action":"allow"}`, "", "", "@a:x.org", InviteAllowed},
		{"default_action not a string", `{"default_action":["block"]}`, "", "", "@a:x.org", InviteAllowed},
		{"stable content not an object", `"block"`, "", "", "@a:x.org", InviteAllowed},
		{"block every user", "", "", `{"blocked_users":["*"]}`, "@a:x.org", InviteBlocked},
		{"block every server", "", "", `{"blocked_servers":["*"]}`, "@a:x.org", InviteBlocked},
		{"allowed server before blocked *", "", "", `{"allowed_servers":["goodguys.org"],"blocked_servers":["*"]}`, "@a:goodguys.org", InviteAllowed},
		{"other server blocked", "", "", `{"allowed_servers":["goodguys.org"],"blocked_servers":["*"]}`, "@a:badguys.org", InviteBlocked},
		{"ignored before blocked", "", "", `{"allowed_servers":["goodguys.org"],"ignored_servers":["reallybad.org"],"blocked_servers":["*"]}`, "@a:reallybad.org", InviteIgnored},
		{"allowed user beats blocked server", "", "", `{"allowed_users":["@goodguy:badguys.org"],"blocked_servers":["badguys.org"]}`, "@goodguy:badguys.org", InviteAllowed},
		{"other user of blocked server", "", "", `{"allowed_users":["@goodguy:badguys.org"],"blocked_servers":["badguys.org"]}`, "@evil:badguys.org", InviteBlocked},
		{"allowed server beats ignored user", "", "", `{"allowed_servers":["x.org"],"ignored_users":["@a:x.org"]}`, "@a:x.org", InviteAllowed},
		{"ignored user glob", "", "", `{"ignored_users":["@spam*:x.org"]}`, "@spammer:x.org", InviteIgnored},
		{"glob ? is one character", "", "", `{"blocked_users":["@?:x.org"]}`, "@ab:x.org", InviteAllowed},
		{"glob ? matches", "", "", `{"blocked_users":["@?:x.org"]}`, "@a:x.org", InviteBlocked},
		{"server names ignore case", "", "", `{"blocked_servers":["BAD.org"]}`, "@a:bad.ORG", InviteBlocked},
		{"user globs are case sensitive", "", "", `{"blocked_users":["@A:x.org"]}`, "@a:x.org", InviteAllowed},
		{"server with port", "", "", `{"blocked_servers":["x.org:*"]}`, "@a:x.org:8448", InviteBlocked},
		{"server glob is the whole name", "", "", `{"blocked_servers":["x.org"]}`, "@a:evilx.org", InviteAllowed},
		{"null list", "", "", `{"blocked_users":null}`, "@a:x.org", InviteAllowed},
		{"list not an array", "", "", `{"blocked_users":"*"}`, "@a:x.org", InviteAllowed},
		{"non-string entries skipped", "", "", `{"blocked_users":[1,null,{},"@a:x.org"]}`, "@a:x.org", InviteBlocked},
		{"lists not an object", "", "", `["*"]`, "@a:x.org", InviteAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := func(s string) json.RawMessage {
				if s == "" {
					return nil
				}
				return json.RawMessage(s)
			}
			got := ParseInvitePermission(raw(tc.stable), raw(tc.msc4380), raw(tc.lists)).Decide(tc.inviter)
			if got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}
}

// FuzzInvitePermission: the config is account data a client writes;
// parsing and deciding must not panic whatever it holds, and a config
// that blocks everything must block any inviter.
func FuzzInvitePermission(f *testing.F) {
	f.Add([]byte(`{"default_action":"block"}`), []byte(`{"allowed_users":["@a:*"],"ignored_servers":["x?.org"],"blocked_servers":["*"]}`), "@a:x.org")
	f.Add([]byte(`null`), []byte(`{"blocked_users":[1,"*"]}`), "not a user id")
	f.Add([]byte(`{`), []byte(`[]`), "")
	f.Fuzz(func(t *testing.T, stable, lists []byte, inviter string) {
		p := ParseInvitePermission(stable, nil, lists)
		d := p.Decide(inviter)
		if d != InviteAllowed && d != InviteIgnored && d != InviteBlocked {
			t.Fatalf("decision %d", d)
		}
		if p.blockAll && d != InviteBlocked {
			t.Fatalf("default_action block let %q through", inviter)
		}
	})
}
