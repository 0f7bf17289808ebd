package clientsync

import (
	"encoding/json"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/push"
)

// EventList is the {"events": [...]} object of many sync sections.
type EventList[T any] struct {
	Events []T `json:"events"`
}

// Timeline is a room's timeline section.
type Timeline struct {
	Events    []clientevent.Event `json:"events"`
	Limited   bool                `json:"limited"`
	PrevBatch string              `json:"prev_batch,omitempty"`
}

// JoinedRoom is an entry of rooms.join.
type JoinedRoom struct {
	Summary                   map[string]any               `json:"summary,omitempty"`
	State                     EventList[clientevent.Event] `json:"state"`
	Timeline                  Timeline                     `json:"timeline"`
	Ephemeral                 EventList[any]               `json:"ephemeral"`
	AccountData               EventList[any]               `json:"account_data"`
	UnreadNotifications       *push.Counts                 `json:"unread_notifications,omitempty"`
	UnreadThreadNotifications map[string]push.Counts       `json:"unread_thread_notifications,omitempty"`
	// StateAfter, set when the request asks for use_state_after, replaces
	// State (see MarshalJSON).
	StateAfter *EventList[clientevent.Event] `json:"state_after,omitempty"`
	// unstableStateAfter names state_after by its MSC4222 prefix (see
	// Response.UseUnstableStateAfter).
	unstableStateAfter bool
	// joiners are the other users whose joins are in the timeline, for
	// the presence of users newly sharing a room (not served).
	joiners []string
}

// MarshalJSON leaves state out when state_after is given: with
// use_state_after the server MUST omit state (spec v1.16, MSC4222).
func (r JoinedRoom) MarshalJSON() ([]byte, error) {
	type plain JoinedRoom
	if r.StateAfter == nil {
		return json.Marshal(plain(r))
	}
	var unstable *EventList[clientevent.Event]
	if r.unstableStateAfter {
		unstable, r.StateAfter = r.StateAfter, nil
	}
	return json.Marshal(struct {
		plain
		State    *struct{}                     `json:"state,omitempty"`
		Unstable *EventList[clientevent.Event] `json:"org.matrix.msc4222.state_after,omitempty"`
	}{plain: plain(r), Unstable: unstable})
}

// newJoinedRoom is an entry whose lists render as [] rather than null.
func newJoinedRoom() *JoinedRoom {
	return &JoinedRoom{State: EventList[clientevent.Event]{Events: []clientevent.Event{}},
		Timeline:  Timeline{Events: []clientevent.Event{}},
		Ephemeral: EventList[any]{Events: []any{}}, AccountData: EventList[any]{Events: []any{}}}
}

// StrippedRoom is an entry of rooms.invite or rooms.knock.
type StrippedRoom struct {
	InviteState *EventList[clientevent.Stripped] `json:"invite_state,omitempty"`
	KnockState  *EventList[clientevent.Stripped] `json:"knock_state,omitempty"`
}

// LeftRoom is an entry of rooms.leave.
type LeftRoom struct {
	State       EventList[clientevent.Event]  `json:"state"`
	StateAfter  *EventList[clientevent.Event] `json:"state_after,omitempty"`
	Timeline    Timeline                      `json:"timeline"`
	AccountData EventList[any]                `json:"account_data"`
	// unstableStateAfter as JoinedRoom's.
	unstableStateAfter bool
}

// MarshalJSON leaves state out when state_after is given, as
// JoinedRoom's.
func (r LeftRoom) MarshalJSON() ([]byte, error) {
	type plain LeftRoom
	if r.StateAfter == nil {
		return json.Marshal(plain(r))
	}
	var unstable *EventList[clientevent.Event]
	if r.unstableStateAfter {
		unstable, r.StateAfter = r.StateAfter, nil
	}
	return json.Marshal(struct {
		plain
		State    *struct{}                     `json:"state,omitempty"`
		Unstable *EventList[clientevent.Event] `json:"org.matrix.msc4222.state_after,omitempty"`
	}{plain: plain(r), Unstable: unstable})
}

// UseUnstableStateAfter names every room's state_after
// org.matrix.msc4222.state_after, for a client that asked with the
// unstable org.matrix.msc4222.use_state_after parameter: clients written
// against the MSC (matrix-rust-sdk, matrix-js-sdk) send and read the
// prefixed names, which Synapse served before spec v1.16 and still
// serves beside the stable ones.
func (r *Response) UseUnstableStateAfter() {
	for _, room := range r.Rooms.Join {
		room.unstableStateAfter = true
	}
	for _, room := range r.Rooms.Leave {
		room.unstableStateAfter = true
	}
}

// Response is the /sync response.
type Response struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join   map[string]*JoinedRoom   `json:"join"`
		Invite map[string]*StrippedRoom `json:"invite"`
		Leave  map[string]*LeftRoom     `json:"leave"`
		Knock  map[string]*StrippedRoom `json:"knock"`
	} `json:"rooms"`
	AccountData EventList[any] `json:"account_data"`
	Presence    EventList[any] `json:"presence"`
	ToDevice    EventList[any] `json:"to_device"`
	DeviceLists struct {
		Changed []string `json:"changed"`
		Left    []string `json:"left"`
	} `json:"device_lists"`
	DeviceOneTimeKeysCount map[string]int `json:"device_one_time_keys_count"`
	// DeviceUnusedFallbackKeyTypes is required, also when empty: a client
	// reads an absent list as a server without fallback keys and so never
	// replaces a fallback key once it was used (matrix-rust-sdk does).
	DeviceUnusedFallbackKeyTypes []string `json:"device_unused_fallback_key_types"`
}

func newResponse(next Token) *Response {
	r := &Response{NextBatch: next.String(), DeviceOneTimeKeysCount: map[string]int{}}
	r.Rooms.Join = map[string]*JoinedRoom{}
	r.Rooms.Invite = map[string]*StrippedRoom{}
	r.Rooms.Leave = map[string]*LeftRoom{}
	r.Rooms.Knock = map[string]*StrippedRoom{}
	r.AccountData.Events = []any{}
	r.Presence.Events = []any{}
	r.ToDevice.Events = []any{}
	r.DeviceLists.Changed, r.DeviceLists.Left = []string{}, []string{}
	r.DeviceUnusedFallbackKeyTypes = []string{}
	return r
}

// empty reports whether the response carries nothing new, so that the
// request keeps waiting.
func (r *Response) empty() bool {
	return len(r.Rooms.Join) == 0 && len(r.Rooms.Invite) == 0 && len(r.Rooms.Leave) == 0 && len(r.Rooms.Knock) == 0 &&
		len(r.AccountData.Events) == 0 && len(r.Presence.Events) == 0 && len(r.ToDevice.Events) == 0 &&
		len(r.DeviceLists.Changed) == 0 && len(r.DeviceLists.Left) == 0
}
