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
