package remote

import (
	"context"
	"net/url"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// Queries local users make of other servers.

// QueryProfile asks a user's server for their profile, or one field of
// it (field ""), keeping every field the server returns.
func (f *Service) QueryProfile(ctx context.Context, userID, field string) (map[string]any, error) {
	q := url.Values{"user_id": {userID}}
	if field != "" {
		q.Set("field", field)
	}
	var out map[string]any
	if err := f.signedRequest(ctx, ServerOf(userID), "GET", "/_matrix/federation/v1/query/profile?"+q.Encode(), nil, &out); err != nil {
		return nil, f.remoteError(ctx, ServerOf(userID), err)
	}
	if out == nil {
		out = map[string]any{}
	}
	return out, nil
}

// PublicRooms asks another server for its public room directory, with
// the client's filter, limit and paging token passed on.
func (f *Service) PublicRooms(ctx context.Context, server string, body map[string]any) (map[string]any, error) {
	var out map[string]any
	if err := f.signedRequest(ctx, server, "POST", "/_matrix/federation/v1/publicRooms", body, &out); err != nil {
		return nil, f.remoteError(ctx, server, err)
	}
	return out, nil
}

// signedRequest sends an X-Matrix signed request and decodes the answer.
func (f *Service) signedRequest(ctx context.Context, server, method, path string, body, out any) error {
	req := fclient.NewFederationRequest(method, spec.ServerName(f.d.ServerName), spec.ServerName(server), path)
	if body != nil {
		if err := req.SetContent(body); err != nil {
			return err
		}
	}
	if err := req.Sign(spec.ServerName(f.d.ServerName), gomatrixserverlib.KeyID(f.d.Key.ID), f.d.Key.Private); err != nil {
		return err
	}
	hreq, err := req.HTTPRequest()
	if err != nil {
		return err
	}
	return f.d.Client.DoRequestAndParseResponse(ctx, hreq, out)
}
