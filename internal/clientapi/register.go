package clientapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/regtokens"
	"github.com/myelin-chat/myelin/internal/uia"
)

// maxPasswordLen is Synapse's limit; longer passwords are refused rather
// than hashed at great cost.
const maxPasswordLen = 512

func (a *API) registerRegistration(rt *httpapi.Router) {
	legacy(rt, httpapi.Route{Method: http.MethodPost, Path: "/register", Handler: a.register, RateLimit: LimitRegister})
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/register/available", Handler: a.registerAvailable, RateLimit: LimitRegister})
	v1(rt, httpapi.Route{Method: http.MethodGet, Path: "/register/m.login.registration_token/validity", Handler: a.registrationTokenValidity, RateLimit: LimitRegister})
}

type registerRequest struct {
	Auth json.RawMessage `json:"auth"`
	// Type is m.login.application_service for a service's registration.
	Type                     string  `json:"type"`
	Username                 string  `json:"username"`
	Password                 string  `json:"password"`
	DeviceID                 string  `json:"device_id"`
	InitialDeviceDisplayName *string `json:"initial_device_display_name"`
	InhibitLogin             bool    `json:"inhibit_login"`
	RefreshToken             bool    `json:"refresh_token"`
	// GuestAccessToken upgrades the guest account it belongs to instead
	// of creating one (spec "Guest Access"; Synapse's body parameter).
	GuestAccessToken string `json:"guest_access_token"`
	// usernameGiven tells an absent username (one is generated) from an
	// empty one (refused, as Synapse does).
	usernameGiven bool
}

func (req *registerRequest) UnmarshalJSON(raw []byte) error {
	type plain registerRequest
	var body struct {
		plain
		Username *string `json:"username"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return err
	}
	*req = registerRequest(body.plain)
	if body.Username != nil {
		req.Username, req.usernameGiven = *body.Username, true
	}
	return nil
}

// registrationFlows follows the configuration: a token stage when tokens
// are required, the dummy stage for open registration, nothing otherwise.
func (a *API) registrationFlows() ([]uia.Flow, []uia.Stage) {
	reg := a.cfg.Registration
	switch {
	case reg.RequireToken:
		return []uia.Flow{{"m.login.registration_token"}}, []uia.Stage{registrationTokenStage{a.regTokens, a.uia}}
	case reg.Open:
		return []uia.Flow{{"m.login.dummy"}}, []uia.Stage{dummyStage{}}
	}
	return nil, nil
}

func (a *API) register(r *http.Request, _ *httpapi.Caller) (any, error) {
	var req registerRequest
	if err := httpapi.ReadOptionalJSON(r, &req); err != nil {
		return nil, err
	}
	switch kind := r.URL.Query().Get("kind"); kind {
	case "", "user":
	case "guest":
		return a.registerGuest(r, req)
	default:
		return nil, mxerr.InvalidParam("Invalid kind %q", kind)
	}
	if req.Type == loginTypeAppService {
		req.Username = strings.ToLower(req.Username)
		return a.registerAppService(r, req)
	}
	flows, stages := a.registrationFlows()
	if flows == nil {
		return nil, mxerr.Forbidden("Registration has been disabled")
	}
	// Check the username before authentication, so that a client learns
	// of a taken name before spending a registration token on it.
	// Synapse lowercases the requested username (only /register;
	// /register/available refuses capitals).
	req.Username = strings.ToLower(req.Username)
	if req.GuestAccessToken != "" {
		guest, err := a.guestToUpgrade(r, req)
		if err != nil {
			return nil, err
		}
		req.Username = guest
	} else if req.usernameGiven {
		if req.Username == "" {
			return nil, mxerr.InvalidUsername("User ID cannot be empty")
		}
		if err := a.accounts.CheckAvailable(r.Context(), req.Username); err != nil {
			return nil, err
		}
		if err := a.exclusiveLocalpart(req.Username); err != nil {
			return nil, err
		}
	}
	if len(req.Password) > maxPasswordLen {
		return nil, mxerr.WeakPassword("Password too long")
	}
	// Refused before the account exists, not after.
	if err := accounts.CheckDeviceDisplayName(req.InitialDeviceDisplayName); err != nil {
		return nil, err
	}
	auth, err := uia.ParseAuth(req.Auth)
	if err != nil {
		return nil, err
	}
	sess, err := a.uia.Check(r.Context(), uia.Request{Method: r.Method, URI: r.URL.Path, Auth: auth}, flows, stages)
	if err != nil {
		return nil, err
	}
	if req.Password == "" {
		return nil, mxerr.MissingParam("Missing params: password")
	}
	user, err := a.createOrUpgrade(r.Context(), req)
	if err != nil {
		return nil, err
	}
	if token := regtokens.SessionToken(sess.Data); token != "" {
		if err := a.regTokens.Complete(r.Context(), token); err != nil {
			return nil, err
		}
	}
	if err := a.uia.Finish(r.Context(), sess); err != nil {
		return nil, err
	}
	return a.finishRegistration(r, user, req)
}

// guestToUpgrade checks a guest_access_token: it must belong to a guest
// account, whose localpart the username (required by the spec, taken
// from the token when absent, as Synapse) must name. It returns that
// localpart.
func (a *API) guestToUpgrade(r *http.Request, req registerRequest) (string, error) {
	c, err := a.accounts.Authenticate(r.Context(), req.GuestAccessToken, httpapi.ClientIP(r), r.UserAgent(), false)
	if err != nil {
		if _, ok := mxerr.As(err); ok {
			return "", mxerr.Forbidden("Invalid guest_access_token")
		}
		return "", err
	}
	if !c.User.IsGuest {
		return "", mxerr.Forbidden("guest_access_token does not belong to a guest")
	}
	if req.Username != "" && req.Username != c.User.Localpart {
		return "", mxerr.Forbidden("A guest account can only be upgraded to its own user ID")
	}
	return c.User.Localpart, nil
}

// createOrUpgrade creates the account or, with a guest_access_token,
// makes the guest account a full one: the user ID, its rooms and its
// devices stay.
func (a *API) createOrUpgrade(ctx context.Context, req registerRequest) (accounts.User, error) {
	if req.GuestAccessToken == "" {
		return a.accounts.CreateAccount(ctx, accounts.NewAccount{Localpart: req.Username, Password: req.Password})
	}
	if err := a.accounts.UpgradeGuest(ctx, req.Username, req.Password); err != nil {
		return accounts.User{}, err
	}
	return a.accounts.User(ctx, req.Username)
}

func (a *API) registerGuest(r *http.Request, req registerRequest) (any, error) {
	if !a.cfg.Registration.AllowGuests {
		return nil, mxerr.Forbidden("Guest access is disabled")
	}
	user, err := a.accounts.CreateAccount(r.Context(), accounts.NewAccount{Guest: true})
	if err != nil {
		return nil, err
	}
	// Guests get a device of their own choosing only once they upgrade.
	req.DeviceID = ""
	return a.finishRegistration(r, user, req)
}

func (a *API) finishRegistration(r *http.Request, user accounts.User, req registerRequest) (any, error) {
	if req.InhibitLogin {
		return map[string]any{"user_id": user.UserID, "home_server": a.cfg.ServerName}, nil
	}
	login, err := a.accounts.StartSession(r.Context(), accounts.SessionRequest{
		Localpart: user.Localpart, DeviceID: req.DeviceID, DisplayName: req.InitialDeviceDisplayName,
		Refresh: req.RefreshToken, IP: httpapi.ClientIP(r), Agent: r.UserAgent(),
	})
	if err != nil {
		return nil, err
	}
	return a.loginBody(login), nil
}

func (a *API) registerAvailable(r *http.Request, _ *httpapi.Caller) (any, error) {
	// As in Synapse: with registration closed there is nothing to ask,
	// and answering would let anyone enumerate the server's users.
	if !a.cfg.Registration.Open && !a.cfg.Registration.RequireToken {
		return nil, mxerr.Forbidden("Registration has been disabled")
	}
	username := r.URL.Query().Get("username")
	if username == "" {
		return nil, mxerr.MissingParam("Missing username")
	}
	if err := a.accounts.CheckAvailable(r.Context(), username); err != nil {
		return nil, err
	}
	if err := a.exclusiveLocalpart(username); err != nil {
		return nil, err
	}
	return map[string]bool{"available": true}, nil
}

func (a *API) registrationTokenValidity(r *http.Request, _ *httpapi.Caller) (any, error) {
	if !a.cfg.Registration.Open && !a.cfg.Registration.RequireToken {
		return nil, mxerr.Forbidden("Registration has been disabled")
	}
	token := r.URL.Query().Get("token")
	if token == "" {
		return nil, mxerr.MissingParam("Missing token")
	}
	valid, err := a.regTokens.Valid(r.Context(), token)
	if err != nil {
		return nil, err
	}
	return map[string]bool{"valid": valid}, nil
}
