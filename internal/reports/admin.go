package reports

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// The admins' inbox of reports of all three kinds: Synapse's
// event_reports, room_reports and user_reports read it one kind at a
// time, Myelin's /_myelin/admin/v1/reports all at once, with resolving.

// AdminStore is the storage the admin side reads.
type AdminStore interface {
	ListReports(ctx context.Context, q store.ReportQuery) ([]store.Report, int64, error)
	Report(ctx context.Context, id int64, kind string) (store.Report, error)
	DeleteReport(ctx context.Context, id int64, kind string) error
	ResolveReport(ctx context.Context, id int64, by string, ts int64) error
}

// The kinds of report, by what they name ("" in a query is every kind).
const (
	KindEvent = store.ReportEvent
	KindRoom  = store.ReportRoom
	KindUser  = store.ReportUser
)

// Report is one report as the admin API shows it: of an event (EventID
// set), a room (only RoomID) or a user (TargetUserID).
type Report struct {
	ID           int64
	Reporter     string
	RoomID       string
	EventID      string
	TargetUserID string
	Reason       string
	Score        *int64 // the event report score clients sent before v1.18 removed it
	ReceivedTS   int64
	// ResolvedBy is the admin who resolved the report and ResolvedTS
	// when ("" and 0 while it is open).
	ResolvedBy string
	ResolvedTS int64
	// ForwardedTo are the room moderators the report was sent to.
	ForwardedTo []string
}

// Kind is KindEvent, KindRoom or KindUser.
func (r Report) Kind() string { return store.Report(r).Kind() }

// Query selects a page of reports.
type Query struct {
	// Kind keeps one kind of report ("" keeps all).
	Kind string
	// From skips that many reports; Before > 0 keeps only reports with a
	// smaller ID (Synapse's room_reports pages by report ID).
	From   int
	Before int64
	Limit  int
	// Forwards lists oldest first; the default is newest first.
	Forwards bool
	// Reporter, RoomID and TargetUserID keep reports whose reporter, room
	// ID or reported user contain them ("" keeps all).
	Reporter, RoomID, TargetUserID string
	// Resolved keeps only resolved (true) or open (false) reports.
	Resolved *bool
}

// Admin serves the admin API's reports.
type Admin struct {
	st    AdminStore
	rooms *rooms.Engine
	now   func() time.Time
}

// NewAdmin makes the admin side.
func NewAdmin(st AdminStore, engine *rooms.Engine) *Admin {
	return &Admin{st: st, rooms: engine, now: time.Now}
}

// List is a page of reports and how many match in all.
func (a *Admin) List(ctx context.Context, q Query) ([]Report, int64, error) {
	rows, total, err := a.st.ListReports(ctx, store.ReportQuery(q))
	if err != nil {
		return nil, 0, err
	}
	list := make([]Report, len(rows))
	for i, r := range rows {
		list[i] = Report(r)
	}
	return list, total, nil
}

func notFound(kind string) error {
	switch kind {
	case KindEvent:
		return mxerr.NotFound("Event report not found")
	case KindRoom:
		return mxerr.NotFound("Room report not found")
	case KindUser:
		return mxerr.NotFound("User report not found")
	}
	return mxerr.NotFound("Report not found")
}

// Get is one report of a kind ("" any); M_NOT_FOUND if there is none.
func (a *Admin) Get(ctx context.Context, id int64, kind string) (Report, error) {
	rep, err := a.st.Report(ctx, id, kind)
	if errors.Is(err, store.ErrNotFound) {
		return Report{}, notFound(kind)
	}
	return Report(rep), err
}

// Delete removes a report of a kind ("" any); M_NOT_FOUND if there is none.
func (a *Admin) Delete(ctx context.Context, id int64, kind string) error {
	err := a.st.DeleteReport(ctx, id, kind)
	if errors.Is(err, store.ErrNotFound) {
		return notFound(kind)
	}
	return err
}

// Resolve marks a report resolved by an admin, now, or open again
// (resolved false), and returns it; M_NOT_FOUND if there is none.
// Resolving a resolved report again records the later admin and time.
func (a *Admin) Resolve(ctx context.Context, id int64, admin string, resolved bool) (Report, error) {
	by := admin
	if !resolved {
		by = ""
	}
	if err := a.st.ResolveReport(ctx, id, by, a.now().UnixMilli()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return Report{}, notFound("")
		}
		return Report{}, err
	}
	return a.Get(ctx, id, "")
}

// Described is what Synapse's admin API shows of a report besides the
// report itself: the reported event (nil when this server no longer
// holds it, or the report is not of an event) and the room's name,
// canonical alias and topic ("" when unset).
type Described struct {
	Event          *rooms.Event
	Name           string
	CanonicalAlias string
	Topic          string
}

// Describe looks up the reported event and the room's name, alias and topic.
func (a *Admin) Describe(ctx context.Context, rep Report) (Described, error) {
	var d Described
	if rep.EventID != "" {
		ev, err := a.rooms.Event(ctx, rep.EventID)
		if err != nil {
			if _, ok := mxerr.As(err); ok || errors.Is(err, store.ErrNotFound) {
				ev = nil // purged or never held: the report stays readable
			} else {
				return Described{}, err
			}
		}
		d.Event = ev
	}
	if rep.RoomID == "" {
		return d, nil
	}
	state, err := a.rooms.CurrentState(ctx, rep.RoomID)
	if err != nil {
		if _, ok := mxerr.As(err); ok || errors.Is(err, store.ErrNotFound) {
			return d, nil
		}
		return Described{}, err
	}
	for key, field := range map[string]*string{spec.MRoomName: &d.Name, spec.MRoomCanonicalAlias: &d.CanonicalAlias, spec.MRoomTopic: &d.Topic} {
		sev, err := a.rooms.StateEvent(ctx, state, key, "")
		if err != nil || sev == nil {
			continue
		}
		var c struct {
			Name  string `json:"name"`
			Alias string `json:"alias"`
			Topic string `json:"topic"`
		}
		if json.Unmarshal(sev.Content(), &c) == nil {
			*field = c.Name + c.Alias + c.Topic
		}
	}
	return d, nil
}
