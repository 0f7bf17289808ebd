package clientapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/appservice"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// loginTypeAppService is the registration type of spec "Appservice
// Login" and "Server admin style permissions".
const loginTypeAppService = "m.login.application_service"

func (a *API) registerAppServices(rt *httpapi.Router) {
	v1(rt, httpapi.Route{Method: http.MethodPost, Path: "/appservice/{appserviceId}/ping", Auth: httpapi.AuthRequired, Handler: a.pingAppService}, "/fi.mau.msc2659/appservice/{appserviceId}/ping")
}

// appServiceCaller authenticates a request made with an application
// service's as_token (spec "Identity assertion"): it acts as the
// service's sender or, with ?user_id=, a registered user of its
// namespaces. As Synapse, the user must exist: a service registers its
// users first (403 "Application service has not registered this user").
func (a *API) appServiceCaller(ctx context.Context, reg *appservice.Registration, r *http.Request) (*httpapi.Caller, error) {
	userID, err := a.appservices.ActAs(reg, r.URL.Query().Get("user_id"))
	if err != nil {
		return nil, err
	}
	lp, _ := a.accounts.LocalpartOf(userID)
	u, err := a.accounts.User(ctx, lp)
	if errors.Is(err, accounts.ErrNoSuchUser) || (err == nil && u.Deactivated) {
		return nil, mxerr.Forbidden("Application service has not registered this user (%s)", userID)
	}
	if err != nil {
		return nil, err
	}
	deviceID, err := a.appServiceDevice(ctx, u.Localpart, r)
	if err != nil {
		return nil, err
	}
	return &httpapi.Caller{
		UserID: u.UserID, Localpart: u.Localpart, DeviceID: deviceID, IsAdmin: u.IsAdmin,
		Locked: u.Locked, Suspended: u.Suspended, ShadowBanned: u.ShadowBanned,
		AppService: reg.ID, RateLimitExempt: !reg.RateLimited,
	}, nil
}

// registerAppService is POST /register with type
// m.login.application_service: a service registers a user of its
// namespaces with its as_token, without UIA (spec "Appservice Login").
func (a *API) registerAppService(r *http.Request, req registerRequest) (any, error) {
	token, present, err := httpapi.AccessToken(r)
	if err != nil {
		return nil, err
	}
	if !present || token == "" {
		return nil, mxerr.MissingToken("Missing access token")
	}
	reg := a.appservices.ByToken(token)
	if reg == nil {
		return nil, mxerr.UnknownToken("Invalid application service token")
	}
	if !req.usernameGiven || req.Username == "" {
		return nil, mxerr.MissingParam("Missing params: username")
	}
	if err := a.accounts.ValidateLocalpart(req.Username); err != nil {
		return nil, err
	}
	if err := a.appservices.MayRegister(reg, req.Username); err != nil {
		return nil, err
	}
	user, err := a.accounts.CreateAccount(r.Context(), accounts.NewAccount{Localpart: req.Username})
	if err != nil {
		return nil, err
	}
	return a.finishRegistration(r, user, req)
}

// exclusiveLocalpart refuses, to normal registration, a user ID an
// application service holds exclusively.
func (a *API) exclusiveLocalpart(localpart string) error {
	return a.appservices.CheckUserFree(a.accounts.UserID(localpart))
}

func (a *API) pingAppService(r *http.Request, c *httpapi.Caller) (any, error) {
	var body struct {
		TxnID string `json:"transaction_id"`
	}
	if err := httpapi.ReadOptionalJSON(r, &body); err != nil {
		return nil, err
	}
	ms, err := a.appservices.Ping(r.Context(), a.asClient, c.AppService, r.PathValue("appserviceId"), body.TxnID)
	if err != nil {
		return nil, err
	}
	return map[string]int64{"duration_ms": ms}, nil
}

// bridgedTS is the ts query parameter an application service may give
// on /send and /state (spec "Timestamp massaging"): the event's
// origin_server_ts. 0 when absent or when the caller is no service.
func bridgedTS(r *http.Request, c *httpapi.Caller) (int64, error) {
	v := r.URL.Query().Get("ts")
	if v == "" || c == nil || c.AppService == "" {
		return 0, nil
	}
	ts, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || ts <= 0 {
		return 0, mxerr.InvalidParam("ts must be a positive integer of milliseconds")
	}
	return ts, nil
}

// notFound says whether err is a 404 M_NOT_FOUND.
func notFound(err error) bool {
	e, ok := mxerr.As(err)
	return ok && e.Code == "M_NOT_FOUND"
}

// localProfile reads a local user's profile; an unknown user in an
// application service's namespace is first asked of the service, which
// may create it (spec "Query User").
func (a *API) localProfile(ctx context.Context, userID, lp string) (map[string]json.RawMessage, error) {
	p, err := a.accounts.Profile(ctx, lp)
	if notFound(err) && a.appservices.QueryUser(ctx, a.asClient, userID) {
		return a.accounts.Profile(ctx, lp)
	}
	return p, err
}

// lookupLocalAlias resolves a local alias; an unknown one in a service's
// namespace is first asked of the service (spec "Query Room Alias").
func (a *API) lookupLocalAlias(ctx context.Context, alias string) (string, []string, error) {
	roomID, servers, err := a.aliases.Lookup(ctx, alias)
	if notFound(err) && a.appservices.QueryAlias(ctx, a.asClient, alias) {
		return a.aliases.Lookup(ctx, alias)
	}
	return roomID, servers, err
}

// appServiceLogin is /login with m.login.application_service (spec
// "Appservice Login", v1.2): a service logs in, with its as_token, as a
// registered user of its namespaces or its sender, getting a device and
// an access token of that user (how mautrix bridges give their bot an
// encryption device without MSC4190).
func (a *API) appServiceLogin(r *http.Request, id string) (accounts.User, error) {
	token, present, err := httpapi.AccessToken(r)
	if err != nil {
		return accounts.User{}, err
	}
	if !present || token == "" {
		return accounts.User{}, mxerr.MissingToken("Missing access token")
	}
	reg := a.appservices.ByToken(token)
	if reg == nil {
		return accounts.User{}, mxerr.UnknownToken("Invalid application service token")
	}
	userID := id
	if !strings.HasPrefix(id, "@") {
		userID = a.accounts.UserID(strings.ToLower(id))
	}
	if !reg.OwnsUser(userID, a.cfg.ServerName) {
		return accounts.User{}, mxerr.Forbidden("Application service is not interested in user %s", userID)
	}
	lp, _ := a.accounts.LocalpartOf(userID)
	u, err := a.accounts.User(r.Context(), lp)
	if errors.Is(err, accounts.ErrNoSuchUser) || (err == nil && u.Deactivated) {
		return accounts.User{}, mxerr.Forbidden("Application service has not registered this user (%s)", userID)
	}
	return u, err
}
