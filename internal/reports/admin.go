package reports

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Reading and deleting event reports for the admin API.

// AdminStore is the storage the admin side reads.
type AdminStore interface {
	EventReports(ctx context.Context, q store.EventReportQuery) ([]store.Report, int64, error)
	EventReport(ctx context.Context, id int64) (store.Report, error)
	DeleteEventReport(ctx context.Context, id int64) error
}

// Report is one report as the admin API shows it: of an event (EventID
// set), a room (only RoomID) or a user (TargetUserID).
type Report struct {
	ID           int64
	Reporter     string
	RoomID       string
	EventID      string
	TargetUserID string
	Reason       string
	Score        *int64 // the deprecated event report score
	ReceivedTS   int64
}

// Query selects a page of event reports.
type Query struct {
	From, Limit int
	// Forwards lists oldest first; the default is newest first.
	Forwards bool
	// Reporter and RoomID keep reports whose reporter or room ID contain
	// them ("" keeps all).
	Reporter, RoomID string
}

// Admin serves the admin API's event reports.
type Admin struct {
	st    AdminStore
	rooms *rooms.Engine
}

// NewAdmin makes the admin side.
func NewAdmin(st AdminStore, engine *rooms.Engine) *Admin { return &Admin{st: st, rooms: engine} }

// List is a page of event reports and how many match in all.
func (a *Admin) List(ctx context.Context, q Query) ([]Report, int64, error) {
	rows, total, err := a.st.EventReports(ctx, store.EventReportQuery(q))
	if err != nil {
		return nil, 0, err
	}
	list := make([]Report, len(rows))
	for i, r := range rows {
		list[i] = Report(r)
	}
	return list, total, nil
}

// Get is one event report; M_NOT_FOUND if there is none.
func (a *Admin) Get(ctx context.Context, id int64) (Report, error) {
	rep, err := a.st.EventReport(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Report{}, mxerr.NotFound("Event report not found")
	}
	return Report(rep), err
}

// Delete removes an event report; M_NOT_FOUND if there is none.
func (a *Admin) Delete(ctx context.Context, id int64) error {
	err := a.st.DeleteEventReport(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return mxerr.NotFound("Event report not found")
	}
	return err
}

// Described is what Synapse's admin API shows of a report besides the
// report itself: the reported event (nil when this server no longer
// holds it) and the room's name and canonical alias ("" when unset).
type Described struct {
	Event          *rooms.Event
	Name           string
	CanonicalAlias string
}

// Describe looks up the reported event and the room's name and alias.
func (a *Admin) Describe(ctx context.Context, rep Report) (Described, error) {
	var d Described
	ev, err := a.rooms.Event(ctx, rep.EventID)
	if err != nil {
		if _, ok := mxerr.As(err); ok || errors.Is(err, store.ErrNotFound) {
			ev = nil // purged or never held: the report stays readable
		} else {
			return Described{}, err
		}
	}
	d.Event = ev
	state, err := a.rooms.CurrentState(ctx, rep.RoomID)
	if err != nil {
		if _, ok := mxerr.As(err); ok || errors.Is(err, store.ErrNotFound) {
			return d, nil
		}
		return Described{}, err
	}
	for key, field := range map[string]*string{spec.MRoomName: &d.Name, spec.MRoomCanonicalAlias: &d.CanonicalAlias} {
		sev, err := a.rooms.StateEvent(ctx, state, key, "")
		if err != nil || sev == nil {
			continue
		}
		var c struct {
			Name  string `json:"name"`
			Alias string `json:"alias"`
		}
		if json.Unmarshal(sev.Content(), &c) == nil {
			*field = c.Name + c.Alias
		}
	}
	return d, nil
}
