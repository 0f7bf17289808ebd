package reports

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/servernotices"
)

// Forwarding reports of events to the room's moderators (issue 17 item
// 5, config reports.forward_to_moderators). The server's admins see
// every report; the people who can act in the room itself (remove the
// event, kick or ban its sender) often see it sooner. Each moderator
// gets a server notice: it shows in every client, in a room of their own
// with the server, without the server joining the reported room.

// ReportContentKey carries the report's fields in the notice's content,
// for bots that read notices.
const ReportContentKey = "org.myelin.report"

// Moderators are the users a report of an event in a room is forwarded
// to: local users joined to the room whose power level reaches the
// room's "redact" level and exceeds users_default. Those are the users
// who can remove the reported event, the first thing a report of an
// event asks for (with the default power levels, the room's moderators
// at 50 and admins at 100; in v12 rooms, its creators). A room that
// sets redact no higher than users_default has no moderators in this
// sense, rather than making every member one. The reporter and the
// event's sender are left out: the first knows, and the second should
// not learn who reported them from the report.
func (s *Service) Moderators(ctx context.Context, roomID string, exclude ...string) ([]string, error) {
	state, err := s.o.Rooms.CurrentState(ctx, roomID)
	if err != nil {
		return nil, err
	}
	pl, err := s.o.Rooms.PowerLevels(ctx, state)
	if err != nil {
		return nil, err
	}
	system := ""
	if s.o.Notices != nil {
		system = s.o.Notices.SystemUser()
	}
	var out []string
	for userID, level := range pl.Users {
		if level < pl.Redact || level <= pl.UsersDefault || userID == system || slices.Contains(exclude, userID) {
			continue
		}
		uid, err := spec.NewUserID(userID, true)
		if err != nil || string(uid.Domain()) != s.o.ServerName {
			continue
		}
		if m, err := s.o.Rooms.MembershipIn(ctx, state, userID); err != nil {
			return nil, err
		} else if m != spec.Join {
			continue
		}
		out = append(out, userID)
	}
	slices.Sort(out)
	return out, nil
}

// forward sends a report of ev to the room's moderators and records who
// received it. The report is already stored: a notice that cannot be
// sent is logged, and leaves that moderator out of forwarded_to.
func (s *Service) forward(ctx context.Context, id int64, reporter string, ev *rooms.Event, reason string) {
	roomID := ev.RoomID().String()
	log := s.o.Log.With("report_id", id, "room_id", roomID, "event_id", ev.EventID())
	mods, err := s.Moderators(ctx, roomID, reporter, ev.Sender())
	if err != nil {
		log.WarnContext(ctx, "reports: finding the room's moderators", "err", err)
		return
	}
	if len(mods) == 0 {
		return
	}
	content, err := json.Marshal(s.noticeContent(ctx, reporter, roomID, ev.EventID(), reason))
	if err != nil {
		log.ErrorContext(ctx, "reports: notice content", "err", err)
		return
	}
	var delivered []string
	for _, mod := range mods {
		if _, err := s.o.Notices.Send(ctx, mod, servernotices.Notice{Content: content}); err != nil {
			log.WarnContext(ctx, "reports: forwarding to a moderator", "moderator", mod, "err", err)
			continue
		}
		delivered = append(delivered, mod)
	}
	if len(delivered) == 0 {
		return
	}
	if err := s.o.Store.SetReportForwards(ctx, id, delivered); err != nil {
		log.ErrorContext(ctx, "reports: recording the forwards", "err", err)
	}
}

// noticeContent is an m.notice naming the room, the event, the reporter
// and the reason, never the event's content: the moderator opens it in
// the room, where the room's own visibility rules apply. Plain text
// only, so that a reason cannot inject markup.
func (s *Service) noticeContent(ctx context.Context, reporter, roomID, eventID, reason string) map[string]any {
	room := roomID
	if name := s.roomName(ctx, roomID); name != "" {
		room = fmt.Sprintf("%q (%s)", name, roomID)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "A message in %s, a room you moderate, was reported to this server's admins.\n", room)
	fmt.Fprintf(&b, "Event: %s\n", eventID)
	fmt.Fprintf(&b, "Reported by: %s\n", reporter)
	if reason != "" {
		fmt.Fprintf(&b, "Reason: %s\n", reason)
	}
	fmt.Fprintf(&b, "https://matrix.to/#/%s/%s", url.PathEscape(roomID), url.PathEscape(eventID))
	return map[string]any{
		"msgtype": "m.notice",
		"body":    b.String(),
		ReportContentKey: map[string]string{
			"room_id": roomID, "event_id": eventID, "reporter": reporter, "reason": reason,
		},
	}
}

// roomName is the room's m.room.name ("" when unset or unreadable).
func (s *Service) roomName(ctx context.Context, roomID string) string {
	state, err := s.o.Rooms.CurrentState(ctx, roomID)
	if err != nil {
		return ""
	}
	ev, err := s.o.Rooms.StateEvent(ctx, state, spec.MRoomName, "")
	if err != nil || ev == nil {
		return ""
	}
	var c struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(ev.Content(), &c) != nil {
		return ""
	}
	return c.Name
}
