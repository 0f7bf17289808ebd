package clientapi_test

import (
	"net/url"
	"testing"

	"github.com/myelin-chat/myelin/internal/clientapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// FuzzParseDelay: any query string yields a delay that is not negative,
// no delay, or M_INVALID_PARAM; never a panic.
func FuzzParseDelay(f *testing.F) {
	for _, s := range []string{"org.matrix.msc4140.delay=1000", "delay=0", "delay=-1", "delay=1e3", "delay=99999999999999999999",
		"org.matrix.msc4140.delay=&delay=5", "delay=%00", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		d, ok, err := clientapi.ParseDelay(q)
		if err != nil {
			if e, isMx := mxerr.As(err); !isMx || e.Code != "M_INVALID_PARAM" || ok {
				t.Fatalf("%q: error %v, ok %v", raw, err, ok)
			}
			return
		}
		if d < 0 || !ok && d != 0 {
			t.Fatalf("%q: delay %v, ok %v", raw, d, ok)
		}
	})
}

// FuzzThreadSubscriptionBody: a PUT .../subscription body is a
// subscription by hand, an automatic one naming a string, or
// M_BAD_JSON.
func FuzzThreadSubscriptionBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"automatic":"$x"}`, `{"automatic":null}`, `{"automatic":true}`, `[]`, `null`, `{"automatic":"\u0000"}`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		auto, err := clientapi.ParseThreadSubscription(body)
		if err != nil {
			if e, ok := mxerr.As(err); !ok || e.Code != "M_BAD_JSON" || e.Status != 400 || auto != nil {
				t.Fatalf("%q: %v", body, err)
			}
		}
	})
}

// FuzzDelayedAction: an update body is one of the three actions or a
// 400 with M_BAD_JSON, M_MISSING_PARAM or M_INVALID_PARAM.
func FuzzDelayedAction(f *testing.F) {
	for _, s := range []string{`{"action":"send"}`, `{"action":"restart"}`, `{"action":"cancel"}`, `{"action":1}`, `{}`, `{"action":"Send"}`, `x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		action, err := clientapi.ParseDelayedAction(body)
		if err == nil {
			if action != "send" && action != "restart" && action != "cancel" {
				t.Fatalf("%q: action %q", body, action)
			}
			return
		}
		e, ok := mxerr.As(err)
		if !ok || e.Status != 400 || e.Code != "M_BAD_JSON" && e.Code != "M_MISSING_PARAM" && e.Code != "M_INVALID_PARAM" {
			t.Fatalf("%q: %v", body, err)
		}
	})
}
