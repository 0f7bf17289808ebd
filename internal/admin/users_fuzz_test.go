package admin

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// FuzzUserChange: any body of PUT /_synapse/admin/v2/users/{userId} is
// either refused as a Matrix error or read into a change within
// Synapse's bounds.
func FuzzUserChange(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"password":"pw","logout_devices":false,"displayname":"A","avatar_url":"mxc://a/b","admin":true,"deactivated":false,"locked":true,"user_type":"bot"}`,
		`{"user_type":null,"displayname":null}`, `{"threepids":[{"medium":"email","address":"a@b"}],"external_ids":[]}`,
		`{"admin":"yes"}`, `{"password":5}`, `{"threepids":"x"}`, `{"user_type":"wizard"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var raw map[string]json.RawMessage
		if json.Unmarshal(body, &raw) != nil {
			return
		}
		ch, err := parseChange(userBody{raw: raw})
		if err != nil {
			if e, ok := mxerr.As(err); !ok || e.Status != 400 {
				t.Fatalf("refused without a 400 Matrix error: %v", err)
			}
			return
		}
		if ch.password != nil && (*ch.password == "" || len(*ch.password) > 512) {
			t.Fatalf("password out of bounds accepted: %q", *ch.password)
		}
		if ch.userType != nil && *ch.userType != "bot" && *ch.userType != "support" {
			t.Fatalf("user type %q accepted", *ch.userType)
		}
	})
}

// FuzzUserQuery: any query string of GET /_synapse/admin/v2/users is
// refused or gives a query the store can run (a known order, offsets not
// negative, text the database takes).
func FuzzUserQuery(f *testing.F) {
	for _, seed := range []string{"", "from=10&limit=5&order_by=displayname&dir=b", "guests=false&admins=true&deactivated=true&locked=true",
		"name=%25&user_id=_", "from=-1", "order_by=x", "guests=1", "name=%00", "not_user_type=bot&not_user_type=", "not_user_type=%00"} {
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, query string, v3 bool) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		uq, err := parseUserQuery(q, v3)
		if err != nil {
			return
		}
		if !accounts.ValidUserOrder(uq.Order) || uq.From < 0 || uq.Limit < 0 {
			t.Fatalf("invalid query accepted: %+v", uq)
		}
		for _, nt := range uq.NotUserTypes {
			if ident.CheckText(nt) != nil {
				t.Fatalf("not_user_type the database refuses accepted: %q", nt)
			}
		}
		if ident.CheckText(uq.Name) != nil || ident.CheckText(uq.UserID) != nil {
			t.Fatalf("text the database refuses accepted: %+v", uq)
		}
		if !v3 && (uq.Deactivated == nil || *uq.Deactivated) && q.Get("deactivated") != "true" {
			t.Fatalf("v2 lists deactivated users without deactivated=true: %+v", uq)
		}
	})
}
