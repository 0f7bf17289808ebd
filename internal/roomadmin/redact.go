package roomadmin

import (
	"context"
	"crypto/rand"
	"maps"
	"strings"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// Redacting a user's events (Synapse's POST
// /_synapse/admin/v1/user/{userId}/redact, which Draupnir calls to clean
// up after a spammer): a background job that redacts, in each room
// named (or every room the user is joined to or banned from), the
// user's messages, encrypted messages and joins, newest first.

// DefaultRedactLimit is how many of the user's events are taken in each
// room when the request names no limit (Synapse's default).
const DefaultRedactLimit = 1000

// UserRedactRequest is a user redaction's parameters.
type UserRedactRequest struct {
	UserID string
	// Rooms are the rooms to redact in; none means every room the user
	// is joined to or banned from, as Synapse.
	Rooms  []string
	Reason string
	// Limit is how many events are taken in each room (the newest).
	Limit int
	// Requester is the admin asking. The redactions are sent by the user
	// themselves when they are local (so that no power in the room is
	// needed), unless UseAdmin; a remote user's are sent by the admin,
	// who must be able to redact in the room, as in Synapse.
	Requester string
	UseAdmin  bool
}

// The states of a user redaction, Synapse's task states.
const (
	RedactScheduled = "scheduled"
	RedactActive    = "active"
	RedactComplete  = "complete"
	RedactFailed    = "failed"
)

// UserRedaction is one user redaction and where it stands.
type UserRedaction struct {
	RedactID, UserID, Status string
	// Failed is the events that could not be redacted, with why.
	Failed map[string]string
	done   time.Time
}

// StartUserRedaction checks a user redaction and queues it on the
// deletions worker; it returns the redact ID.
func (d *Deletions) StartUserRedaction(ctx context.Context, req UserRedactRequest) (string, error) {
	s := d.s
	if lp, local := s.o.Accounts.LocalpartOf(req.UserID); local {
		if _, err := s.o.Accounts.User(ctx, lp); err != nil {
			return "", err
		}
	}
	for _, r := range req.Rooms {
		if !strings.HasPrefix(r, "!") {
			return "", mxerr.InvalidParam("%s is not a legal room ID", r)
		}
	}
	if req.Limit <= 0 {
		req.Limit = DefaultRedactLimit
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	id := rand.Text()[:16]
	d.redactions[id] = &UserRedaction{RedactID: id, UserID: req.UserID, Status: RedactScheduled, Failed: map[string]string{}}
	d.queue = append(d.queue, ShutdownRequestJob{ID: id, Redact: &req})
	d.queued[id] = d.now()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return id, nil
}

// UserRedactionStatus is one user redaction; ok is false for an unknown
// redact ID. Finished ones are kept a week, as deletions.
func (d *Deletions) UserRedactionStatus(id string) (UserRedaction, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cutoff := d.now().Add(-keepDeletions)
	for k, j := range d.redactions {
		if !j.done.IsZero() && j.done.Before(cutoff) {
			delete(d.redactions, k)
		}
	}
	j, ok := d.redactions[id]
	if !ok {
		return UserRedaction{}, false
	}
	out := *j
	out.Failed = maps.Clone(j.Failed)
	return out, true
}

func (d *Deletions) setRedaction(id string, f func(*UserRedaction)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if j := d.redactions[id]; j != nil {
		f(j)
	}
}

// runUserRedaction carries out a queued user redaction. An event that
// cannot be redacted is recorded in Failed and the job goes on; the job
// fails only when the rooms cannot be listed.
func (d *Deletions) runUserRedaction(ctx context.Context, id string, req UserRedactRequest) {
	s := d.s
	d.setRedaction(id, func(j *UserRedaction) { j.Status = RedactActive })
	finish := func(status string) {
		d.setRedaction(id, func(j *UserRedaction) { j.Status, j.done = status, d.now() })
	}
	roomIDs := req.Rooms
	if len(roomIDs) == 0 {
		ms, err := s.o.Membership.Memberships(ctx, req.UserID)
		if err != nil {
			s.o.Log.Warn("admin: user redaction could not list rooms", "user_id", req.UserID, "redact_id", id, "err", err)
			finish(RedactFailed)
			return
		}
		for roomID, m := range ms {
			if m == spec.Join || m == spec.Ban {
				roomIDs = append(roomIDs, roomID)
			}
		}
	}
	sender := req.Requester
	if _, local := s.o.Accounts.LocalpartOf(req.UserID); local && !req.UseAdmin {
		sender = req.UserID
	}
	content := map[string]any{}
	if req.Reason != "" {
		content["reason"] = req.Reason
	}
	s.o.Log.Info("admin: redacting a user's events", "user_id", req.UserID, "by", req.Requester, "rooms", len(roomIDs), "redact_id", id)
	for _, roomID := range roomIDs {
		if ctx.Err() != nil {
			finish(RedactFailed)
			return
		}
		events, err := s.o.Store.RedactableEventsOf(ctx, roomID, req.UserID, req.Limit)
		if err != nil {
			s.o.Log.Warn("admin: user redaction could not list events", "room_id", roomID, "redact_id", id, "err", err)
			continue
		}
		for _, eventID := range events {
			_, err := s.o.Rooms.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: sender, Type: spec.MRoomRedaction, Redacts: eventID, Content: content})
			if err != nil {
				msg := err.Error()
				if me, ok := mxerr.As(err); ok {
					msg = me.Message
				}
				d.setRedaction(id, func(j *UserRedaction) { j.Failed[eventID] = msg })
			}
		}
	}
	finish(RedactComplete)
}
