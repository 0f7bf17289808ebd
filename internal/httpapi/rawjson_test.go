package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/myelin-chat/myelin/internal/httpapi"
)

// TestWriteJSONRaw: an answer already encoded (RawJSON) goes out byte for
// byte, not re-encoded (encoding/json would escape the "<"), and inside
// another answer (send_join v1's [200, body]) it is the value, not a
// base64 string.
func TestWriteJSONRaw(t *testing.T) {
	body := `{"state":[{"content":{"body":"<b>"}}]}`
	w := httptest.NewRecorder()
	httpapi.WriteJSON(w, http.StatusOK, httpapi.RawJSON(body))
	if w.Code != http.StatusOK || w.Body.String() != body || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("WriteJSON(RawJSON) = %d %q (%s), want 200 %q", w.Code, w.Body.String(), w.Header().Get("Content-Type"), body)
	}
	v1, err := json.Marshal([]any{http.StatusOK, httpapi.RawJSON(body)})
	if err != nil {
		t.Fatal(err)
	}
	var got []json.RawMessage
	if err := json.Unmarshal(v1, &got); err != nil || len(got) != 2 {
		t.Fatalf("v1 answer %s: %v", v1, err)
	}
	var a, b any
	if json.Unmarshal(got[1], &a) != nil || json.Unmarshal([]byte(body), &b) != nil || !jsonSame(a, b) {
		t.Errorf("v1 answer's body %s, want %s", got[1], body)
	}
}

func jsonSame(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestWriteJSONAsMarshal: WriteJSON encodes into a pooled buffer; what
// goes out is still json.Marshal's bytes (HTML escaped, no newline at the
// end, "null" for nil), answer after answer through the same buffers,
// big ones too, and a value that cannot be encoded is a 500 M_UNKNOWN
// with nothing of it written.
func TestWriteJSONAsMarshal(t *testing.T) {
	big := make([]string, 20000)
	for i := range big {
		big[i] = "entry"
	}
	for i, v := range []any{
		map[string]any{"body": "<b>&</b>", "n": 1},
		nil,
		[]int{1, 2, 3},
		map[string]any{"big": big},
		"short",
		map[string]any{"body": "\u2028 é"},
	} {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		httpapi.WriteJSON(w, http.StatusCreated, v)
		if w.Code != http.StatusCreated || w.Body.String() != string(want) {
			t.Errorf("%d: WriteJSON = %d %.80q, want 201 %.80q", i, w.Code, w.Body.String(), want)
		}
	}
	w := httptest.NewRecorder()
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"ch": make(chan int)})
	if w.Code != http.StatusInternalServerError || w.Body.String() != `{"errcode":"M_UNKNOWN","error":"Internal server error"}` {
		t.Errorf("unencodable: %d %q", w.Code, w.Body.String())
	}
}
