package appservice

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// pingTimeout bounds a ping; Synapse allows it 60 seconds too, but a
// client waits for the answer, so it gets less.
const pingTimeout = 30 * time.Second

// Ping answers POST /_matrix/client/v1/appservice/{appserviceId}/ping for
// caller, the id of the service whose as_token authenticated the request:
// it calls the service's /_matrix/app/v1/ping and returns how long the
// round trip took, or the spec's errors.
func (r *Registry) Ping(ctx context.Context, c *Client, caller, id, txnID string) (int64, error) {
	reg := r.ByID(id)
	if reg == nil || caller != reg.ID {
		return 0, mxerr.Forbidden("Access token does not belong to application service %s", id)
	}
	if reg.URL == "" {
		return 0, mxerr.URLNotSet()
	}
	ctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	start := time.Now()
	err := c.Ping(ctx, reg, txnID)
	took := time.Since(start).Milliseconds()
	var se *StatusError
	var ne net.Error
	switch {
	case err == nil:
		return took, nil
	case errors.As(err, &se):
		return 0, mxerr.BadStatus(se.Status, string(se.Body))
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return 0, mxerr.ConnectionTimeout()
	default:
		return 0, mxerr.ConnectionFailed()
	}
}
