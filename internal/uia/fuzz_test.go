package uia_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/uia"
)

// FuzzParseAuth: the "auth" object of every User-Interactive
// Authentication request, unauthenticated at registration. It is
// refused with 400 M_BAD_JSON unless it is an object whose type and
// session are strings, which are then read as sent.
func FuzzParseAuth(f *testing.F) {
	for _, s := range []string{`{"type":"m.login.dummy","session":"abc"}`, `{"type":"m.login.password","identifier":{"type":"m.id.user","user":"a"},"password":"p"}`,
		`null`, ``, `[]`, `{"type":1}`, `{"session":null}`, `{"type":"\u0000"}`, "{\"type\":\"\xff\"}", `"x"`, `{"type":"a","type":"b"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		a, err := uia.ParseAuth(raw)
		if err != nil {
			var merr *mxerr.Error
			if !errors.As(err, &merr) || merr.Status != http.StatusBadRequest || merr.Code != "M_BAD_JSON" {
				t.Fatalf("%q refused with %v", raw, err)
			}
			return
		}
		if a == nil {
			if len(raw) != 0 && string(raw) != "null" {
				t.Fatalf("%q read as no auth", raw)
			}
			return
		}
		// Keys are matched exactly, unlike encoding/json's struct fields:
		// "tYpe" is not "type".
		var fields map[string]json.RawMessage
		var typ, session string
		if json.Unmarshal(raw, &fields) != nil || fields["type"] != nil && json.Unmarshal(fields["type"], &typ) != nil ||
			fields["session"] != nil && json.Unmarshal(fields["session"], &session) != nil || a.Type != typ || a.Session != session {
			t.Fatalf("%q read as %+v", raw, a)
		}
	})
}
