package remote

import (
	"context"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Local users' requests for other servers' media (server-server spec
// "Content Repository", 1.11); the inbound package serves this server's.

// rawClient is what fclient's federation client offers beyond its
// interface: sending a prepared request and handing back the raw
// answer, which multipart media answers need.
type rawClient interface {
	DoHTTPRequest(ctx context.Context, req *http.Request) (*http.Response, error)
}

// FetchMedia sends an X-Matrix signed GET of a federation media path to
// server and returns the answer unread (media.Remote).
func (f *Service) FetchMedia(ctx context.Context, server, path string) (*http.Response, error) {
	rc, ok := f.d.Client.(rawClient)
	if !ok {
		return nil, mxerr.Unknown("Federation client cannot fetch media")
	}
	req := fclient.NewFederationRequest(http.MethodGet, spec.ServerName(f.d.ServerName), spec.ServerName(server), path)
	if err := req.Sign(spec.ServerName(f.d.ServerName), gomatrixserverlib.KeyID(f.d.Key.ID), f.d.Key.Private); err != nil {
		return nil, err
	}
	hreq, err := req.HTTPRequest()
	if err != nil {
		return nil, err
	}
	return rc.DoHTTPRequest(ctx, hreq)
}
