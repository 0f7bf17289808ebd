package roomadmin

import (
	"cmp"
	"maps"
	"slices"
)

// The jobs of the deletions worker as one list (Synapse's GET
// /_synapse/admin/v1/scheduled_tasks, which Ketesa shows): room
// deletions, history purges and user redactions, under Synapse's task
// action names and states.

// Task is one job as the scheduled tasks list shows it.
type Task struct {
	ID          string  `json:"id"`
	Action      string  `json:"action"`
	Status      string  `json:"status"`
	TimestampMS int64   `json:"timestamp_ms"`
	ResourceID  string  `json:"resource_id"`
	Result      any     `json:"result"`
	Error       *string `json:"error"`
}

// TaskFilter selects tasks; empty fields keep all.
type TaskFilter struct {
	Action, ResourceID, Status string
	// MaxTimestampMS keeps tasks queued at or before it (0: all).
	MaxTimestampMS int64
}

// The states a task has, Synapse's TaskStatus.
const (
	TaskScheduled = "scheduled"
	TaskActive    = "active"
	TaskComplete  = "complete"
	TaskFailed    = "failed"
)

// Tasks lists the worker's jobs the week keeps, oldest first.
func (d *Deletions) Tasks(f TaskFilter) []Task {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.prune()
	var out []Task
	add := func(t Task) {
		t.TimestampMS = d.queued[t.ID].UnixMilli()
		if (f.Action == "" || t.Action == f.Action) && (f.ResourceID == "" || t.ResourceID == f.ResourceID) &&
			(f.Status == "" || t.Status == f.Status) && (f.MaxTimestampMS == 0 || t.TimestampMS <= f.MaxTimestampMS) {
			out = append(out, t)
		}
	}
	errOf := func(e string) *string {
		if e == "" {
			return nil
		}
		return &e
	}
	for _, j := range d.jobs {
		status := j.Status
		if status == StatusShuttingDown || status == StatusPurging {
			status = TaskActive
		}
		add(Task{ID: j.DeleteID, Action: "shutdown_and_purge_room", Status: status, ResourceID: j.RoomID, Result: j.Result, Error: errOf(j.Error)})
	}
	for _, p := range d.purges {
		add(Task{ID: p.PurgeID, Action: "purge_history", Status: p.Status, ResourceID: p.RoomID, Error: errOf(p.Error)})
	}
	for _, r := range d.redactions {
		add(Task{ID: r.RedactID, Action: "redact_all_events", Status: r.Status, ResourceID: r.UserID,
			Result: map[string]any{"failed_redactions": maps.Clone(r.Failed)}})
	}
	slices.SortFunc(out, func(a, b Task) int { return cmp.Or(cmp.Compare(a.TimestampMS, b.TimestampMS), cmp.Compare(a.ID, b.ID)) })
	return out
}
