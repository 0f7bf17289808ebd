package roomadmin

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Purging a room's old events (Synapse's purge history API): the
// timeline before a point goes, state events and, unless asked,
// local users' events stay.

// HistoryRequest is a history purge's parameters: up to (not including)
// the event UpToEventID, or the last event at or before UpToTS.
type HistoryRequest struct {
	RoomID            string
	UpToEventID       string
	UpToTS            *int64
	DeleteLocalEvents bool
	Requester         string
	// Before is the stream position the purge stops at, which the checks
	// resolve (kept with the job, so a resumed purge stops there too).
	Before int64
}

// The states of a history purge, as Synapse names them.
const (
	PurgeActive   = "active"
	PurgeComplete = "complete"
	PurgeFailed   = "failed"
)

// HistoryPurge is one history purge and where it stands.
type HistoryPurge struct {
	PurgeID, RoomID, Status, Error string
	Deleted                        int
}

// checkHistory resolves where a purge stops; 400 as Synapse when it
// cannot tell.
func (s *Service) checkHistory(ctx context.Context, req *HistoryRequest) error {
	if _, err := s.currentState(ctx, req.RoomID); err != nil {
		return err
	}
	switch {
	case req.UpToEventID != "":
		ev, err := s.o.Rooms.Event(ctx, req.UpToEventID)
		if err != nil || ev == nil {
			return mxerr.NotFound("Event not found: %s", req.UpToEventID)
		}
		if ev.RoomID().String() != req.RoomID {
			return badRequest("Event is for wrong room.")
		}
		if ev.StreamPos == 0 {
			return badRequest("Event is an outlier")
		}
		req.Before = ev.StreamPos
	case req.UpToTS != nil:
		id, _, ok, err := s.o.Rooms.FirstEventNear(ctx, req.RoomID, *req.UpToTS, s.CurrentPos(), true)
		if err != nil {
			return err
		}
		if !ok {
			return badRequest("there is no event to be purged")
		}
		ev, err := s.o.Rooms.Event(ctx, id)
		if err != nil {
			return err
		}
		req.Before = ev.StreamPos
	default:
		return mxerr.MissingParam("must specify purge_up_to_event_id or purge_up_to_ts")
	}
	return nil
}

// StartHistoryPurge checks a purge and queues it; it returns the purge ID.
func (d *Deletions) StartHistoryPurge(ctx context.Context, req HistoryRequest) (string, error) {
	if err := d.s.checkHistory(ctx, &req); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if busy, err := d.unfinished(ctx, ActionPurgeHistory, req.RoomID); err != nil {
		return "", err
	} else if len(busy) > 0 {
		return "", badRequest("History purge already in progress for " + req.RoomID)
	}
	return d.enqueue(ctx, ActionPurgeHistory, req.RoomID, req)
}

// historyResult is what a finished purge records.
type historyResult struct {
	Deleted int `json:"deleted"`
}

func (d *Deletions) runHistory(ctx context.Context, row store.TaskRow, req HistoryRequest) {
	d.mark(ctx, &row, TaskActive, "")
	local := ":" + d.s.o.ServerName
	if req.DeleteLocalEvents {
		local = ""
	}
	d.s.o.Log.Info("admin: purging room history", "room_id", req.RoomID, "purge_id", row.ID, "by", req.Requester, "delete_local_events", req.DeleteLocalEvents)
	n, err := d.s.o.Rooms.PurgeHistory(ctx, req.RoomID, func(ctx context.Context) (store.PurgedRoom, error) {
		return d.s.o.Store.PurgeHistory(ctx, req.RoomID, req.Before, local)
	})
	d.finish(ctx, &row, historyResult{Deleted: n}, err)
}

// HistoryStatus is one history purge; ok is false for an unknown ID. A
// queued purge is active, as Synapse's purge statuses have no other
// state before the end.
func (d *Deletions) HistoryStatus(ctx context.Context, id string) (HistoryPurge, bool, error) {
	row, err := d.task(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && row.Action != ActionPurgeHistory {
		return HistoryPurge{}, false, nil
	}
	if err != nil {
		return HistoryPurge{}, false, err
	}
	p := HistoryPurge{PurgeID: row.ID, RoomID: row.ResourceID, Status: row.Status, Error: row.Error}
	if p.Status == TaskScheduled {
		p.Status = PurgeActive
	}
	var res historyResult
	if row.Result != "" && json.Unmarshal([]byte(row.Result), &res) == nil {
		p.Deleted = res.Deleted
	}
	return p, true, nil
}
