package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// nonceLifetime is how long a registration nonce stays usable (Synapse: 60 s).
const nonceLifetime = time.Minute

func (a *API) registerNonce(*http.Request, *httpapi.Caller) (any, error) {
	if a.sharedSecret == "" {
		return nil, mxerr.Forbidden("Shared secret registration is not enabled")
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	nonce := hex.EncodeToString(b[:])
	now := a.now()
	a.noncesMu.Lock()
	for n, t := range a.nonces {
		if now.Sub(t) > nonceLifetime {
			delete(a.nonces, n)
		}
	}
	a.nonces[nonce] = now
	a.noncesMu.Unlock()
	return map[string]string{"nonce": nonce}, nil
}

// takeNonce consumes a nonce: each one registers at most one user.
func (a *API) takeNonce(nonce string) bool {
	a.noncesMu.Lock()
	defer a.noncesMu.Unlock()
	t, ok := a.nonces[nonce]
	delete(a.nonces, nonce)
	return ok && a.now().Sub(t) <= nonceLifetime
}

// SharedSecretMAC computes the mac of Synapse's shared-secret
// registration: HMAC-SHA1 over nonce, user, password and admin flag (and
// user type, when given), NUL-separated.
func SharedSecretMAC(secret, nonce, user, password string, admin bool, userType string) string {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(nonce + "\x00" + user + "\x00" + password + "\x00"))
	if admin {
		m.Write([]byte("admin"))
	} else {
		m.Write([]byte("notadmin"))
	}
	if userType != "" {
		m.Write([]byte("\x00" + userType))
	}
	return hex.EncodeToString(m.Sum(nil))
}

func (a *API) registerWithSecret(r *http.Request, _ *httpapi.Caller) (any, error) {
	if a.sharedSecret == "" {
		return nil, mxerr.Forbidden("Shared secret registration is not enabled")
	}
	var req struct {
		Nonce       string  `json:"nonce"`
		Username    string  `json:"username"`
		Password    string  `json:"password"`
		Admin       bool    `json:"admin"`
		UserType    string  `json:"user_type"`
		Displayname *string `json:"displayname"`
		MAC         string  `json:"mac"`
	}
	if err := httpapi.ReadJSON(r, &req); err != nil {
		return nil, err
	}
	if req.Nonce == "" || req.Username == "" || req.Password == "" || req.MAC == "" {
		return nil, mxerr.MissingParam("nonce, username, password and mac are required")
	}
	if len(req.Password) > 512 {
		return nil, mxerr.WeakPassword("Password too long")
	}
	if !a.takeNonce(req.Nonce) {
		return nil, mxerr.InvalidParam("Unrecognised nonce")
	}
	want := SharedSecretMAC(a.sharedSecret, req.Nonce, req.Username, req.Password, req.Admin, req.UserType)
	if !hmac.Equal([]byte(want), []byte(req.MAC)) {
		return nil, mxerr.Forbidden("HMAC incorrect")
	}
	// The mac covers the username as sent; Synapse then lowercases it, so
	// that register_new_matrix_user with "Alice" creates @alice.
	localpart := strings.ToLower(req.Username)
	if err := a.accounts.ValidateLocalpart(localpart); err != nil {
		return nil, err
	}
	user, err := a.accounts.CreateAccount(r.Context(), accounts.NewAccount{
		Localpart: localpart, Password: req.Password, Admin: req.Admin, UserType: req.UserType,
	})
	if err != nil {
		return nil, err
	}
	if req.Displayname != nil && *req.Displayname != "" {
		if err := a.accounts.SetProfileField(r.Context(), user.Localpart, "displayname", quote(*req.Displayname)); err != nil {
			return nil, err
		}
	}
	// Synapse logs the new user in and answers with its access token.
	login, err := a.accounts.StartSession(r.Context(), accounts.SessionRequest{Localpart: user.Localpart, IP: httpapi.ClientIP(r), Agent: r.UserAgent()})
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"user_id": login.UserID, "access_token": login.AccessToken, "device_id": login.DeviceID,
		"home_server": a.accounts.ServerName(),
	}, nil
}

func quote(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}
