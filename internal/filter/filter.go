// Package filter implements the client-server API's event filters: the
// Filter of /sync and /user/{userId}/filter and the RoomEventFilter of
// /messages and /context.
package filter

import (
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// EventFilter selects events by type and sender.
type EventFilter struct {
	// Limit is nil when the filter sets none: 0 is a limit (a sync
	// timeline of no events, as in Synapse), not the default.
	Limit      *int      `json:"limit,omitempty"`
	Types      *[]string `json:"types,omitempty"`
	NotTypes   []string  `json:"not_types,omitempty"`
	Senders    *[]string `json:"senders,omitempty"`
	NotSenders []string  `json:"not_senders,omitempty"`
}

// RoomEventFilter adds the room and content conditions of room events.
type RoomEventFilter struct {
	EventFilter
	Rooms                     *[]string `json:"rooms,omitempty"`
	NotRooms                  []string  `json:"not_rooms,omitempty"`
	ContainsURL               *bool     `json:"contains_url,omitempty"`
	LazyLoadMembers           bool      `json:"lazy_load_members,omitempty"`
	IncludeRedundantMembers   bool      `json:"include_redundant_members,omitempty"`
	UnreadThreadNotifications bool      `json:"unread_thread_notifications,omitempty"`
}

// RoomFilter is the "room" part of a Filter.
type RoomFilter struct {
	Rooms        *[]string       `json:"rooms,omitempty"`
	NotRooms     []string        `json:"not_rooms,omitempty"`
	IncludeLeave bool            `json:"include_leave,omitempty"`
	Timeline     RoomEventFilter `json:"timeline"`
	State        RoomEventFilter `json:"state"`
	Ephemeral    RoomEventFilter `json:"ephemeral"`
	AccountData  RoomEventFilter `json:"account_data"`
}

// Filter is a sync filter.
type Filter struct {
	EventFields []string    `json:"event_fields,omitempty"`
	EventFormat string      `json:"event_format,omitempty"`
	Presence    EventFilter `json:"presence"`
	AccountData EventFilter `json:"account_data"`
	Room        RoomFilter  `json:"room"`
}

// Parse decodes and validates a filter.
func Parse(raw []byte) (*Filter, error) {
	var f Filter
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, mxerr.BadJSON("Invalid filter: %v", err)
	}
	if f.EventFormat != "" && f.EventFormat != "client" && f.EventFormat != "federation" {
		return nil, mxerr.BadJSON("event_format must be client or federation")
	}
	for _, ef := range []*EventFilter{&f.Presence, &f.AccountData, &f.Room.Timeline.EventFilter, &f.Room.State.EventFilter,
		&f.Room.Ephemeral.EventFilter, &f.Room.AccountData.EventFilter} {
		if ef.Limit != nil && *ef.Limit < 0 {
			return nil, mxerr.BadJSON("limit must not be negative")
		}
	}
	return &f, nil
}

// ParseNew is Parse for a filter a client gives now (uploaded, or
// inline in /sync): its room and user IDs must also be valid, as
// Synapse's check_valid_filter requires (its matrix_room_id and
// matrix_user_id formats). Filters stored before this check are read
// with Parse, so that they keep working.
func ParseNew(raw []byte) (*Filter, error) {
	f, err := Parse(raw)
	if err != nil {
		return nil, err
	}
	events := []*EventFilter{&f.Presence, &f.AccountData}
	rooms := []*[]string{f.Room.Rooms}
	notRooms := [][]string{f.Room.NotRooms}
	for _, rf := range []*RoomEventFilter{&f.Room.Timeline, &f.Room.State, &f.Room.Ephemeral, &f.Room.AccountData} {
		events = append(events, &rf.EventFilter)
		rooms, notRooms = append(rooms, rf.Rooms), append(notRooms, rf.NotRooms)
	}
	for i := range rooms {
		if rooms[i] != nil {
			notRooms = append(notRooms, *rooms[i])
		}
	}
	for _, ids := range notRooms {
		for _, id := range ids {
			if !validRoomID(id) {
				return nil, mxerr.BadJSON("Invalid room ID %q in filter", id)
			}
		}
	}
	for _, ef := range events {
		users := ef.NotSenders
		if ef.Senders != nil {
			users = append(slices.Clone(users), *ef.Senders...)
		}
		for _, id := range users {
			if _, err := spec.NewUserID(id, false); err != nil || !utf8.ValidString(id) || strings.ContainsRune(id, 0) {
				return nil, mxerr.BadJSON("Invalid user ID %q in filter", id)
			}
		}
	}
	return f, nil
}

// validRoomID accepts "!" and an opaque ID, with a server name after ":"
// before room version 12 and without one since (MSC4291).
func validRoomID(id string) bool {
	return len(id) > 1 && id[0] == '!' && utf8.ValidString(id) && !strings.ContainsRune(id, 0)
}

// ParseRoomEventFilter decodes a RoomEventFilter (the filter parameter
// of /messages and /context).
func ParseRoomEventFilter(raw []byte) (*RoomEventFilter, error) {
	var f RoomEventFilter
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, mxerr.BadJSON("Invalid filter: %v", err)
	}
	if f.Limit != nil && *f.Limit < 0 {
		return nil, mxerr.BadJSON("limit must not be negative")
	}
	return &f, nil
}

// matchType applies the spec's "*" wildcard, which matches any sequence
// of characters.
func matchType(patterns []string, typ string) bool {
	for _, p := range patterns {
		if glob(p, typ) {
			return true
		}
	}
	return false
}

// glob matches with one backtracking point, the last "*" seen: time
// linear in len(p)*len(s). Trying every split at every "*" recursively
// is exponential in the number of stars, and patterns are the client's.
func glob(p, s string) bool {
	px, sx := 0, 0
	starPx, starSx := -1, 0
	for px < len(p) || sx < len(s) {
		if px < len(p) {
			if p[px] == '*' {
				starPx, starSx = px, sx+1
				px++
				continue
			}
			if sx < len(s) && p[px] == s[sx] {
				px++
				sx++
				continue
			}
		}
		if starPx >= 0 && starSx <= len(s) {
			px, sx = starPx, starSx
			continue
		}
		return false
	}
	return true
}

// Allows reports whether an event of this type and sender passes.
func (f EventFilter) Allows(typ, sender string) bool {
	if matchType(f.NotTypes, typ) || slices.Contains(f.NotSenders, sender) {
		return false
	}
	if f.Types != nil && !matchType(*f.Types, typ) {
		return false
	}
	if f.Senders != nil && !slices.Contains(*f.Senders, sender) {
		return false
	}
	return true
}

// ExcludesType reports whether no event of this type passes, whoever
// sent it: the type is excluded, or senders is an empty list.
func (f EventFilter) ExcludesType(typ string) bool {
	return matchType(f.NotTypes, typ) || (f.Types != nil && !matchType(*f.Types, typ)) || (f.Senders != nil && len(*f.Senders) == 0)
}

// AllowsRoom applies rooms/not_rooms.
func AllowsRoom(rooms *[]string, notRooms []string, roomID string) bool {
	if slices.Contains(notRooms, roomID) {
		return false
	}
	return rooms == nil || slices.Contains(*rooms, roomID)
}

// Allows reports whether a room event passes.
func (f RoomEventFilter) Allows(typ, sender, roomID string, containsURL bool) bool {
	if !f.EventFilter.Allows(typ, sender) || !AllowsRoom(f.Rooms, f.NotRooms, roomID) {
		return false
	}
	return f.ContainsURL == nil || *f.ContainsURL == containsURL
}

// LimitOr returns the filter's limit, or def when it sets none, capped at max.
func (f EventFilter) LimitOr(def, max int) int {
	if f.Limit == nil {
		return min(def, max)
	}
	return min(*f.Limit, max)
}
