package roomadmin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
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

// UserRedaction is one user redaction and where it stands.
type UserRedaction struct {
	RedactID, UserID, Status string
	// Failed is the events that could not be redacted, with why.
	Failed map[string]string
}

// redactResult is what a user redaction records, as Synapse's task
// result.
type redactResult struct {
	Failed map[string]string `json:"failed_redactions"`
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
	return d.enqueue(ctx, ActionRedactUser, req.UserID, req)
}

// UserRedactionStatus is one user redaction; ok is false for an unknown
// redact ID. Finished ones are kept a week, as every job.
func (d *Deletions) UserRedactionStatus(ctx context.Context, id string) (UserRedaction, bool, error) {
	row, err := d.task(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && row.Action != ActionRedactUser {
		return UserRedaction{}, false, nil
	}
	if err != nil {
		return UserRedaction{}, false, err
	}
	out := UserRedaction{RedactID: row.ID, UserID: row.ResourceID, Status: row.Status, Failed: map[string]string{}}
	var res redactResult
	if row.Result != "" && json.Unmarshal([]byte(row.Result), &res) == nil && res.Failed != nil {
		out.Failed = res.Failed
	}
	return out, true, nil
}

// runUserRedaction carries out a queued user redaction. An event that
// cannot be redacted is recorded in the result's failed_redactions
// (written after each room, so the status shows progress) and the job
// goes on; the job fails only when the rooms cannot be listed. Run
// again after a stop, it only takes the events not redacted yet.
func (d *Deletions) runUserRedaction(ctx context.Context, row store.TaskRow, req UserRedactRequest) {
	s := d.s
	res := redactResult{Failed: map[string]string{}}
	if row.Result != "" {
		_ = json.Unmarshal([]byte(row.Result), &res)
		if res.Failed == nil {
			res.Failed = map[string]string{}
		}
	}
	d.mark(ctx, &row, TaskActive, "")
	roomIDs := req.Rooms
	if len(roomIDs) == 0 {
		ms, err := s.o.Membership.Memberships(ctx, req.UserID)
		if err != nil {
			d.finish(ctx, &row, res, fmt.Errorf("listing the user's rooms: %w", err))
			return
		}
		for roomID, m := range ms {
			if m == spec.Join || m == spec.Ban {
				roomIDs = append(roomIDs, roomID)
			}
		}
		slices.Sort(roomIDs)
	}
	sender := req.Requester
	if _, local := s.o.Accounts.LocalpartOf(req.UserID); local && !req.UseAdmin {
		sender = req.UserID
	}
	content := map[string]any{}
	if req.Reason != "" {
		content["reason"] = req.Reason
	}
	s.o.Log.Info("admin: redacting a user's events", "user_id", req.UserID, "by", req.Requester, "rooms", len(roomIDs), "redact_id", row.ID)
	for _, roomID := range roomIDs {
		if ctx.Err() != nil {
			return // stopped: resumed at the next start
		}
		events, err := s.o.Store.RedactableEventsOf(ctx, roomID, req.UserID, req.Limit)
		if err != nil {
			s.o.Log.Warn("admin: user redaction could not list events", "room_id", roomID, "redact_id", row.ID, "err", err)
			continue
		}
		failed := 0
		for _, eventID := range events {
			if _, done := res.Failed[eventID]; done {
				continue
			}
			_, err := s.o.Rooms.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: sender, Type: spec.MRoomRedaction, Redacts: eventID, Content: content})
			if err != nil {
				res.Failed[eventID] = errMessage(err)
				failed++
			}
		}
		if failed > 0 {
			raw, _ := json.Marshal(res)
			row.Result = string(raw)
			d.mark(ctx, &row, TaskActive, "")
		}
	}
	d.finish(ctx, &row, res, nil)
}
