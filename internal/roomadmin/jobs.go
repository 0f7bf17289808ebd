package roomadmin

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// The admin API's background jobs (room deletions, history purges, user
// redactions) run one after the other on one worker, Deletions. Each job
// is a row of the scheduled_tasks table, as in Synapse's task scheduler:
// its parameters, status, result and error are written there, so the
// status endpoints answer after a restart, and a job that was queued or
// running when the server stopped is taken up again when it starts (all
// three kinds are safe to run again: what they already did is not done
// twice, see Run).

// The actions of the jobs, Synapse's task action names.
const (
	ActionDeleteRoom   = "shutdown_and_purge_room"
	ActionPurgeHistory = "purge_history"
	ActionRedactUser   = "redact_all_events"
)

// The states a job has, Synapse's TaskStatus.
const (
	TaskScheduled = "scheduled"
	TaskActive    = "active"
	TaskComplete  = "complete"
	TaskFailed    = "failed"
)

// The phases of a running room deletion, as delete_status names them.
const (
	StatusScheduled    = "scheduled"
	StatusShuttingDown = "shutting_down"
	StatusPurging      = "purging"
	StatusComplete     = "complete"
	StatusFailed       = "failed"
)

// keepTasks is how long finished jobs are remembered, as Synapse keeps
// its finished tasks a week.
const keepTasks = 7 * 24 * time.Hour

// Deletions is the worker that runs the admin API's background jobs
// (registerWorkers: "room-deletion").
type Deletions struct {
	s *Service
	// mu serialises the checks that a job may start with its recording,
	// and guards queue.
	mu sync.Mutex
	// queue is the IDs of the jobs to run, oldest first. The table is
	// the truth; the queue only saves the worker a query per wake-up.
	queue []string
	wake  chan struct{}
	now   func() time.Time
}

func newDeletions(s *Service) *Deletions {
	return &Deletions{s: s, wake: make(chan struct{}, 1), now: time.Now}
}

// enqueue records a new job and wakes the worker. The caller holds mu.
func (d *Deletions) enqueue(ctx context.Context, action, resource string, params any) (string, error) {
	if ident.CheckText(resource) != nil {
		return "", mxerr.InvalidParam("%q is not a valid ID", resource)
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return "", err
	}
	id := rand.Text()[:16]
	now := d.now().UnixMilli()
	if err := d.s.o.Store.InsertTask(ctx, store.TaskRow{ID: id, Action: action, Status: TaskScheduled, TimestampMS: now, QueuedTS: now,
		ResourceID: resource, Params: string(raw)}); err != nil {
		return "", err
	}
	d.queue = append(d.queue, id)
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return id, nil
}

// unfinished lists the jobs of an action and resource still queued or
// running.
func (d *Deletions) unfinished(ctx context.Context, action, resource string) ([]store.TaskRow, error) {
	return d.s.o.Store.Tasks(ctx, store.TaskQuery{Action: action, ResourceID: resource, Statuses: []string{TaskScheduled, TaskActive}})
}

// Run carries out the queued jobs until ctx ends. It first takes up the
// jobs a previous run left queued or running: a job interrupted by a
// stop runs again from its start, which is safe (a room deletion finds
// the members gone and the room purged or not, a history purge finds
// fewer events, a user redaction only takes events not redacted yet).
// A job stopped by ctx keeps its status, to be taken up by the next run.
func (d *Deletions) Run(ctx context.Context) error {
	if err := d.resume(ctx); err != nil && ctx.Err() == nil {
		d.s.o.Log.Warn("admin: could not resume background jobs", "err", err)
	}
	for {
		d.mu.Lock()
		var id string
		if len(d.queue) > 0 {
			id, d.queue = d.queue[0], d.queue[1:]
		}
		d.mu.Unlock()
		if id == "" {
			select {
			case <-ctx.Done():
				return nil
			case <-d.wake:
			}
			continue
		}
		d.runTask(ctx, id)
		if ctx.Err() != nil {
			return nil
		}
		if err := d.s.o.Store.DeleteTasksBefore(ctx, d.now().Add(-keepTasks).UnixMilli()); err != nil {
			d.s.o.Log.Warn("admin: could not forget old background jobs", "err", err)
		}
	}
}

// resume queues the jobs left unfinished, before any queued since.
func (d *Deletions) resume(ctx context.Context) error {
	if err := d.s.o.Store.DeleteTasksBefore(ctx, d.now().Add(-keepTasks).UnixMilli()); err != nil {
		return err
	}
	rows, err := d.s.o.Store.Tasks(ctx, store.TaskQuery{Statuses: []string{TaskScheduled, TaskActive}})
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var left []string
	for _, r := range rows {
		if slices.Contains(d.queue, r.ID) {
			continue
		}
		if r.Status == TaskActive {
			d.s.o.Log.Info("admin: resuming a background job interrupted by a stop", "id", r.ID, "action", r.Action, "resource_id", r.ResourceID)
		}
		left = append(left, r.ID)
	}
	d.queue = append(left, d.queue...)
	return nil
}

// runTask runs one job from its row.
func (d *Deletions) runTask(ctx context.Context, id string) {
	row, err := d.s.o.Store.Task(ctx, id)
	if err != nil {
		if ctx.Err() == nil {
			d.s.o.Log.Warn("admin: background job unreadable", "id", id, "err", err)
		}
		return
	}
	if row.Status != TaskScheduled && row.Status != TaskActive {
		return
	}
	var perr error
	switch row.Action {
	case ActionDeleteRoom:
		var req ShutdownRequest
		if perr = json.Unmarshal([]byte(row.Params), &req); perr == nil {
			d.runDeletion(ctx, row, req)
		}
	case ActionPurgeHistory:
		var req HistoryRequest
		if perr = json.Unmarshal([]byte(row.Params), &req); perr == nil {
			d.runHistory(ctx, row, req)
		}
	case ActionRedactUser:
		var req UserRedactRequest
		if perr = json.Unmarshal([]byte(row.Params), &req); perr == nil {
			d.runUserRedaction(ctx, row, req)
		}
	default:
		perr = fmt.Errorf("unknown action %q", row.Action)
	}
	if perr != nil {
		// Written by a newer or broken version: failed, with why, rather
		// than queued for ever.
		row.Status, row.Error, row.TimestampMS = TaskFailed, "Cannot run this job: "+perr.Error(), d.now().UnixMilli()
		d.save(ctx, row)
	}
}

// save writes where a job stands. A stop (ctx ended) leaves the row as
// it was, so the job is resumed.
func (d *Deletions) save(ctx context.Context, row store.TaskRow) {
	if ctx.Err() != nil {
		return
	}
	if err := d.s.o.Store.UpdateTask(ctx, row); err != nil && ctx.Err() == nil {
		d.s.o.Log.Warn("admin: could not record a background job's status", "id", row.ID, "err", err)
	}
}

// mark sets a job's status and phase and saves it.
func (d *Deletions) mark(ctx context.Context, row *store.TaskRow, status, phase string) {
	row.Status, row.Phase, row.TimestampMS = status, phase, d.now().UnixMilli()
	d.save(ctx, *row)
}

// finish records a job's end: complete with result, or failed with err.
func (d *Deletions) finish(ctx context.Context, row *store.TaskRow, result any, err error) {
	if ctx.Err() != nil {
		return
	}
	if result != nil {
		raw, _ := json.Marshal(result)
		row.Result = string(raw)
	}
	row.Status, row.Phase, row.Error = TaskComplete, "", ""
	if err != nil {
		row.Status, row.Error = TaskFailed, errMessage(err)
		d.s.o.Log.Warn("admin: background job failed", "id", row.ID, "action", row.Action, "resource_id", row.ResourceID, "err", err)
	}
	row.TimestampMS = d.now().UnixMilli()
	d.save(ctx, *row)
}

func errMessage(err error) string {
	if me, ok := mxerr.As(err); ok {
		return me.Message
	}
	return err.Error()
}

// Deletion is one room deletion and where it stands.
type Deletion struct {
	DeleteID string
	RoomID   string
	// Status is one of the Status* phases.
	Status string
	Error  string
	Result ShutdownResult
}

// ErrInProgress refuses a second deletion of a room while one is queued
// or running.
var ErrInProgress = errors.New("roomadmin: deletion in progress")

// Start checks a deletion and queues it; it returns the delete ID.
func (d *Deletions) Start(ctx context.Context, req ShutdownRequest) (string, error) {
	if err := d.s.CheckShutdown(ctx, req); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if busy, err := d.unfinished(ctx, ActionDeleteRoom, req.RoomID); err != nil {
		return "", err
	} else if len(busy) > 0 {
		return "", &mxerr.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN", Message: "Purge already in progress for " + req.RoomID}
	}
	return d.enqueue(ctx, ActionDeleteRoom, req.RoomID, req)
}

func (d *Deletions) runDeletion(ctx context.Context, row store.TaskRow, req ShutdownRequest) {
	// A run interrupted after creating the room members move to left its
	// ID in the result: the members go there, not to a second room.
	var prev ShutdownResult
	if row.Result != "" && json.Unmarshal([]byte(row.Result), &prev) == nil && prev.NewRoomID != nil && req.NewRoomUserID != "" {
		req.newRoomID = *prev.NewRoomID
	}
	req.newRoomMade = func(roomID string) {
		raw, _ := json.Marshal(ShutdownResult{KickedUsers: []string{}, FailedToKickUsers: []string{}, LocalAliases: []string{}, NewRoomID: &roomID})
		row.Result = string(raw)
		d.mark(ctx, &row, TaskActive, StatusShuttingDown)
	}
	d.mark(ctx, &row, TaskActive, StatusShuttingDown)
	res, err := d.s.Shutdown(ctx, req, func() { d.mark(ctx, &row, TaskActive, StatusPurging) })
	d.finish(ctx, &row, res, err)
}

func deletionOf(row store.TaskRow) Deletion {
	out := Deletion{DeleteID: row.ID, RoomID: row.ResourceID, Error: row.Error,
		Result: ShutdownResult{KickedUsers: []string{}, FailedToKickUsers: []string{}, LocalAliases: []string{}}}
	if row.Result != "" {
		_ = json.Unmarshal([]byte(row.Result), &out.Result)
	}
	switch row.Status {
	case TaskActive:
		out.Status = row.Phase
		if out.Status == "" {
			out.Status = StatusShuttingDown
		}
	case TaskComplete:
		out.Status = StatusComplete
	case TaskFailed:
		out.Status = StatusFailed
	default:
		out.Status = StatusScheduled
	}
	return out
}

// task reads one job; an ID no job can have (NUL, invalid UTF-8: the
// database refuses to look such text up) is not found.
func (d *Deletions) task(ctx context.Context, id string) (store.TaskRow, error) {
	if ident.CheckText(id) != nil {
		return store.TaskRow{}, store.ErrNotFound
	}
	return d.s.o.Store.Task(ctx, id)
}

// Status is one deletion; ok is false for an unknown delete ID.
func (d *Deletions) Status(ctx context.Context, id string) (Deletion, bool, error) {
	row, err := d.task(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && row.Action != ActionDeleteRoom {
		return Deletion{}, false, nil
	}
	if err != nil {
		return Deletion{}, false, err
	}
	return deletionOf(row), true, nil
}

// OfRoom is every deletion of a room, oldest first.
func (d *Deletions) OfRoom(ctx context.Context, roomID string) ([]Deletion, error) {
	if ident.CheckText(roomID) != nil {
		return nil, nil
	}
	rows, err := d.s.o.Store.Tasks(ctx, store.TaskQuery{Action: ActionDeleteRoom, ResourceID: roomID})
	if err != nil {
		return nil, err
	}
	out := make([]Deletion, 0, len(rows))
	for _, r := range rows {
		out = append(out, deletionOf(r))
	}
	return out, nil
}
