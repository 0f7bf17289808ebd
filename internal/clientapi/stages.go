package clientapi

import (
	"context"
	"encoding/json"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/regtokens"
	"github.com/myelin-chat/myelin/internal/uia"
)

// identifier is the spec's user identifier object.
type identifier struct {
	Type string `json:"type"`
	User string `json:"user"`
}

// loginUser reads the user from "identifier", falling back to the
// deprecated top-level "user" field that older clients still send.
func loginUser(fields map[string]json.RawMessage) (string, error) {
	var id identifier
	if raw, ok := fields["identifier"]; ok {
		if err := json.Unmarshal(raw, &id); err != nil {
			return "", mxerr.BadJSON("identifier must be an object")
		}
		if id.Type != "m.id.user" {
			return "", &mxerr.Error{Status: 400, Code: "M_UNKNOWN", Message: "Unknown login identifier type"}
		}
		if id.User == "" {
			return "", mxerr.MissingParam("identifier.user is required")
		}
		return id.User, nil
	}
	var user string
	if raw, ok := fields["user"]; ok {
		if err := json.Unmarshal(raw, &user); err != nil {
			return "", mxerr.BadJSON("user must be a string")
		}
	}
	if user == "" {
		return "", mxerr.MissingParam("Missing identifier")
	}
	return user, nil
}

// passwordStage is m.login.password: the user re-enters their password.
type passwordStage struct{ accounts *accounts.Service }

func (passwordStage) Type() string { return "m.login.password" }
func (passwordStage) Params() any  { return nil }

func (p passwordStage) Complete(ctx context.Context, s *uia.Session, a *uia.Auth) error {
	user, err := loginUser(a.Fields)
	if err != nil {
		return err
	}
	lp, err := p.accounts.ResolveLoginUser(ctx, user)
	if err != nil {
		return err
	}
	if lp != s.Localpart {
		return uia.Refuse(mxerr.Forbidden("Requested user does not match the authenticated user"))
	}
	var pw string
	if err := json.Unmarshal(a.Fields["password"], &pw); err != nil || pw == "" {
		return mxerr.MissingParam("Missing password")
	}
	_, err = p.accounts.VerifyPassword(ctx, lp, pw)
	return err
}

// dummyStage is m.login.dummy: nothing to check.
type dummyStage struct{}

func (dummyStage) Type() string                                            { return "m.login.dummy" }
func (dummyStage) Params() any                                             { return nil }
func (dummyStage) Complete(context.Context, *uia.Session, *uia.Auth) error { return nil }

// registrationTokenStage is m.login.registration_token. A valid token is
// reserved for the session (counted as pending) so that a one-use token
// cannot start two registrations.
type registrationTokenStage struct {
	tokens *regtokens.Service
	uia    *uia.Manager
}

func (registrationTokenStage) Type() string { return "m.login.registration_token" }
func (registrationTokenStage) Params() any  { return nil }

func (st registrationTokenStage) Complete(ctx context.Context, s *uia.Session, a *uia.Auth) error {
	var token string
	if err := json.Unmarshal(a.Fields["token"], &token); err != nil || token == "" {
		return mxerr.MissingParam("Missing token")
	}
	if _, done := s.Data[regtokens.SessionKey]; done {
		// Already reserved in an earlier round of this session; as in
		// Synapse, the session is bound to that token.
		if reserved := regtokens.SessionToken(s.Data); reserved != "" && reserved != token {
			return mxerr.InvalidParam("Registration token has changed")
		}
		return nil
	}
	if err := st.tokens.Reserve(ctx, token); err != nil {
		return err
	}
	return st.uia.Remember(ctx, s, regtokens.SessionKey, token)
}
