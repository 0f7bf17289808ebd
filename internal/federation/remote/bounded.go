package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/matrix-org/gomatrix"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"
)

// maxQueryAnswer bounds the body of another server's answer to a query
// whose answer this server only looks into (a space hierarchy), as
// Synapse bounds its federation responses: a server answering more is
// treated as one that could not be reached.
const maxQueryAnswer = 1 << 20

// ErrAnswerTooLarge is a remote answer over its size bound.
var ErrAnswerTooLarge = errors.New("federation answer too large")

// boundedRequest is signedRequest reading at most limit bytes of the
// answer: a longer one fails with ErrAnswerTooLarge, and an error answer
// is a gomatrix.HTTPError, as the federation client makes it.
func (f *Service) boundedRequest(ctx context.Context, server, method, path string, body, out any, limit int64) error {
	rc, ok := f.d.Client.(rawClient)
	if !ok {
		return f.signedRequest(ctx, server, method, path, body, out)
	}
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
	resp, err := rc.DoHTTPRequest(ctx, hreq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return err
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("%w: %s %s from %s: over %d bytes", ErrAnswerTooLarge, method, path, server, limit)
	}
	if resp.StatusCode/100 != 2 {
		var wrap error
		var respErr gomatrix.RespError
		if _ = json.Unmarshal(data, &respErr); respErr.ErrCode != "" {
			wrap = respErr
		}
		return gomatrix.HTTPError{Code: resp.StatusCode, Message: fmt.Sprintf("%s %s: %d", method, path, resp.StatusCode),
			WrappedError: wrap, Contents: data}
	}
	return json.Unmarshal(data, out)
}
