package roomadmin

import (
	"context"
	"encoding/json"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/store"
)

// The jobs of the deletions worker as one list (Synapse's GET
// /_synapse/admin/v1/scheduled_tasks, which Ketesa shows): room
// deletions, history purges and user redactions, under Synapse's task
// action names and states, read from the scheduled_tasks table.

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
	// MaxTimestampMS keeps tasks whose status last changed at or before
	// it (0: all), as Synapse's max_timestamp.
	MaxTimestampMS int64
}

// Tasks lists the worker's jobs the week keeps, in the order they were
// queued.
func (d *Deletions) Tasks(ctx context.Context, f TaskFilter) ([]Task, error) {
	if ident.CheckText(f.Action) != nil || ident.CheckText(f.ResourceID) != nil {
		return []Task{}, nil // no job has such a name
	}
	q := store.TaskQuery{Action: f.Action, ResourceID: f.ResourceID, MaxTimestampMS: f.MaxTimestampMS}
	if f.Status != "" {
		q.Statuses = []string{f.Status}
	}
	rows, err := d.s.o.Store.Tasks(ctx, q)
	if err != nil {
		return nil, err
	}
	out := make([]Task, 0, len(rows))
	for _, r := range rows {
		t := Task{ID: r.ID, Action: r.Action, Status: r.Status, TimestampMS: r.TimestampMS, ResourceID: r.ResourceID}
		if r.Result != "" {
			var v any
			if json.Unmarshal([]byte(r.Result), &v) == nil {
				t.Result = v
			}
		}
		if r.Error != "" {
			e := r.Error
			t.Error = &e
		}
		out = append(out, t)
	}
	return out, nil
}
