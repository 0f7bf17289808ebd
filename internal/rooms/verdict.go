package rooms

import (
	"context"
	"errors"
	"fmt"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// A received event is rejected or soft-failed only by an auth decision
// (server-server spec "Checks performed on receipt of a PDU"). Checking
// can also fail without deciding anything: a database error, or the
// context of a request the remote server gave up on. Such an event must
// not be stored as rejected, which is permanent (a retry finds it known
// and refused); it is left unprocessed and the error returned, so that
// the origin retries its transaction or a later event brings it back.

// AuthError is an auth decision against an event.
type AuthError struct{ Err error }

func (e *AuthError) Error() string { return e.Err.Error() }
func (e *AuthError) Unwrap() error { return e.Err }

// RefusedError is a decision about an event received from elsewhere
// that stores nothing: the event names a room this server does not know,
// or a create event that does not pass its own checks. Receiving it
// again gives the same answer.
type RefusedError struct{ Err error }

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

func refused(format string, args ...any) error {
	return &RefusedError{Err: fmt.Errorf(format, args...)}
}

// Decided reports whether an error from Receive, ReceiveWithState,
// ReceiveHistorical, ReceiveOutOfBand or ImportJoin is a decision about
// the event (an auth error, a refusal, missing events the caller did not
// supply, a Matrix error for a client), rather than a failure to decide
// (database, cancelled context), after which trying again may succeed.
func Decided(err error) bool {
	if err == nil {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var auth *AuthError
	var ref *RefusedError
	var missing *ErrMissingEvents
	_, isMx := mxerr.As(err)
	return errors.As(err, &auth) || errors.As(err, &ref) || errors.As(err, &missing) || isMx
}

// receivedStatus runs the auth checks on receipt of an event: against
// its own auth_events and the state before it (failing: rejected), then,
// when current is not nil, the room's current state (failing: soft
// failed). An error is a failure to check, never a verdict: the caller
// stores nothing.
func (e *Engine) receivedStatus(ctx context.Context, pdu gomatrixserverlib.PDU, v gomatrixserverlib.IRoomVersion, authEvs []*Event, before, current StateMap) (roommodel.Status, error) {
	if err := e.authByOwnEvents(ctx, pdu, authEvs, v); err != nil {
		return verdict(err, roommodel.Rejected)
	}
	if err := e.allowedAt(ctx, pdu, before); err != nil {
		return verdict(err, roommodel.Rejected)
	}
	if current != nil {
		if err := e.allowedAt(ctx, pdu, current); err != nil {
			return verdict(err, roommodel.SoftFailed)
		}
	}
	return roommodel.Accepted, nil
}

// verdict turns a check's error into the status it decides, or passes a
// failure to check on.
func verdict(err error, status roommodel.Status) (roommodel.Status, error) {
	var auth *AuthError
	if errors.As(err, &auth) {
		return status, nil
	}
	return 0, err
}
