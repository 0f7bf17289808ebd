package admin_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// masterKeyUpload is a /keys/device_signing/upload body with a fresh
// master key for the user.
func masterKeyUpload(t *testing.T, userID string) map[string]any {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := base64.RawStdEncoding.EncodeToString(pub)
	return map[string]any{"master_key": map[string]any{"user_id": userID, "usage": []string{"master"}, "keys": map[string]string{"ed25519:" + k: k}}}
}

// TestAdminAllowCrossSigningReplacement covers POST
// .../users/{userId}/_allow_cross_signing_replacement_without_uia: a
// user who has a master key may replace it without UIA once, within the
// window; before and after, replacing needs UIA.
func TestAdminAllowCrossSigningReplacement(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken
		alice := userToken(t, s, admin, "alice", "alice pw")
		path := adminUserPath(s, "alice", "/_allow_cross_signing_replacement_without_uia")
		upload := func() (int, map[string]any) {
			return s.Do(t, "POST", "/_matrix/client/v3/keys/device_signing/upload", alice, masterKeyUpload(t, s.UserID("alice")))
		}

		status, body := s.Do(t, "POST", path, admin, nil)
		testserver.WantError(t, "no master key yet", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = upload()
		testserver.WantStatus(t, "first master key", status, body, http.StatusOK)
		if status, body = upload(); status != http.StatusUnauthorized {
			t.Fatalf("replacing without the window did not ask for UIA: %d %v", status, body)
		}

		status, body = s.Do(t, "POST", path, admin, nil)
		testserver.WantStatus(t, "allow", status, body, http.StatusOK)
		if until, _ := body["updatable_without_uia_before_ms"].(float64); until <= 0 {
			t.Fatalf("answer: %v", body)
		}
		status, body = upload()
		testserver.WantStatus(t, "replace within the window", status, body, http.StatusOK)
		if status, body = upload(); status != http.StatusUnauthorized {
			t.Fatalf("the window stayed open after a replacement: %d %v", status, body)
		}

		status, body = s.Do(t, "POST", admBase+"/users/"+url.PathEscape("@x:elsewhere.test")+"/_allow_cross_signing_replacement_without_uia", admin, nil)
		testserver.WantError(t, "remote user", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = s.Do(t, "POST", adminUserPath(s, "nobody", "/_allow_cross_signing_replacement_without_uia"), admin, nil)
		testserver.WantError(t, "unknown user", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = s.Do(t, "POST", path, alice, nil)
		testserver.WantError(t, "non-admin", status, body, http.StatusForbidden, "M_FORBIDDEN")
		if status, body = upload(); status != http.StatusUnauthorized {
			t.Fatalf("a non-admin opened the window: %d %v", status, body)
		}
	})
}
