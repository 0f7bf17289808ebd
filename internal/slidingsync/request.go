// Package slidingsync serves simplified sliding sync (MSC4186), the sync
// Element X (matrix-rust-sdk) uses in place of /sync: windows over the
// user's rooms sorted by recency, each room with the state the client
// asks for, and per-connection memory of what was sent so that nothing
// is sent twice. It reads rooms, timelines and streams through /sync's
// service (internal/clientsync) and long-polls on its notifier.
package slidingsync

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Limits on what one request may ask, so that a hostile body costs
// bounded work.
const (
	maxLists          = 100
	maxRanges         = 100
	maxRequiredState  = 200
	maxSubscriptions  = 500
	maxTimelineLimit  = 1000
	maxConnIDBytes    = 255
	defaultToDeviceN  = 100
	maxToDeviceLimit  = 1000
	maxFilterElements = 200
	// Thread subscription changes per answer: the rust-sdk's and the
	// MSC's default, and a bound.
	defaultThreadSubsN = 100
	maxThreadSubsLimit = 1000
)

// Request is a parsed sliding sync request.
type Request struct {
	UserID   string
	DeviceID string
	Viewer   clientevent.Viewer
	// Pos is the position the client has ("" starts the connection over).
	Pos         string
	Timeout     time.Duration
	SetPresence string
	Body
}

// Body is the request body. Both the MSC's current names and the ones
// clients and Synapse use are accepted: a body-level pos besides the
// query's, and range besides ranges.
type Body struct {
	ConnID            string                `json:"conn_id"`
	TxnID             string                `json:"txn_id"`
	Pos               string                `json:"pos"`
	Lists             map[string]List       `json:"lists"`
	RoomSubscriptions map[string]RoomConfig `json:"room_subscriptions"`
	Extensions        Extensions            `json:"extensions"`
}

// RoomConfig is what to send of each room: its state and timeline.
type RoomConfig struct {
	RequiredState [][]string `json:"required_state"`
	TimelineLimit int        `json:"timeline_limit"`
}

// List is a window over the user's rooms, sorted by bump_stamp.
type List struct {
	RoomConfig
	Ranges  [][]int64 `json:"ranges"`
	Range   []int64   `json:"range"`
	Filters *Filters  `json:"filters"`
}

// Filters select a list's rooms; nil fields select all.
type Filters struct {
	IsDM         *bool     `json:"is_dm"`
	Spaces       []string  `json:"spaces"`
	IsEncrypted  *bool     `json:"is_encrypted"`
	IsInvite     *bool     `json:"is_invite"`
	IsInvited    *bool     `json:"is_invited"`
	RoomTypes    []*string `json:"room_types"`
	NotRoomTypes []*string `json:"not_room_types"`
	Tags         []string  `json:"tags"`
	NotTags      []string  `json:"not_tags"`
}

// Extensions are the optional sections.
type Extensions struct {
	ToDevice    *ToDeviceRequest `json:"to_device"`
	E2EE        *Toggle          `json:"e2ee"`
	AccountData *Scoped          `json:"account_data"`
	Receipts    *Scoped          `json:"receipts"`
	Typing      *Scoped          `json:"typing"`
	// ThreadSubscriptions is MSC4308's extension, under its unstable
	// name as matrix-rust-sdk sends it and Synapse answers it;
	// StableThreadSubscriptions accepts the MSC's stable name.
	ThreadSubscriptions       *ThreadSubsRequest `json:"io.element.msc4308.thread_subscriptions"`
	StableThreadSubscriptions *ThreadSubsRequest `json:"thread_subscriptions"`
}

// ThreadSubsRequest is the thread subscriptions extension (MSC4308): at
// most limit changes an answer (default defaultThreadSubsN).
type ThreadSubsRequest struct {
	Toggle
	Limit int `json:"limit"`
}

// Toggle is an extension with nothing but enabled.
type Toggle struct {
	Enabled *bool `json:"enabled"`
}

func (t *Toggle) on() bool { return t != nil && t.Enabled != nil && *t.Enabled }

// Scoped is an extension limited to some lists and rooms ("*": all; no
// field: all).
type Scoped struct {
	Toggle
	Lists []string `json:"lists"`
	Rooms []string `json:"rooms"`
}

// ToDeviceRequest is the to_device extension: its own since token.
type ToDeviceRequest struct {
	Toggle
	Since string `json:"since"`
	Limit int    `json:"limit"`
}

// ParseBody reads and checks a request body (empty is an empty request).
func ParseBody(raw []byte) (Body, error) {
	var b Body
	if len(raw) == 0 {
		return b, nil
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return Body{}, mxerr.BadJSON("Invalid sliding sync request: %v", err)
	}
	return b, b.check()
}

func (b *Body) check() error {
	if len(b.ConnID) > maxConnIDBytes {
		return mxerr.InvalidParam("conn_id is too long")
	}
	if len(b.Lists) > maxLists || len(b.RoomSubscriptions) > maxSubscriptions {
		return mxerr.InvalidParam("Too many lists or room subscriptions")
	}
	for name, l := range b.Lists {
		if l.Range != nil {
			l.Ranges = append(l.Ranges, l.Range)
			l.Range = nil
		}
		if len(l.Ranges) > maxRanges {
			return mxerr.InvalidParam("Too many ranges in list %q", name)
		}
		for _, r := range l.Ranges {
			if len(r) != 2 || r[0] < 0 || r[1] < r[0] {
				return mxerr.InvalidParam("Invalid range in list %q", name)
			}
		}
		if err := l.RoomConfig.check(); err != nil {
			return err
		}
		if f := l.Filters; f != nil {
			if f.IsInvite == nil {
				f.IsInvite = f.IsInvited
			}
			if len(f.Spaces)+len(f.RoomTypes)+len(f.NotRoomTypes)+len(f.Tags)+len(f.NotTags) > maxFilterElements {
				return mxerr.InvalidParam("Too many filter elements in list %q", name)
			}
		}
		b.Lists[name] = l
	}
	for _, c := range b.RoomSubscriptions {
		if err := c.check(); err != nil {
			return err
		}
	}
	if td := b.Extensions.ToDevice; td != nil && (td.Limit < 0 || td.Limit > maxToDeviceLimit) {
		return mxerr.InvalidParam("Invalid to_device limit")
	}
	for _, ts := range []*ThreadSubsRequest{b.Extensions.ThreadSubscriptions, b.Extensions.StableThreadSubscriptions} {
		if ts != nil && (ts.Limit < 0 || ts.Limit > maxThreadSubsLimit) {
			return mxerr.InvalidParam("Invalid thread_subscriptions limit")
		}
	}
	return nil
}

func (c *RoomConfig) check() error {
	if c.TimelineLimit < 0 || c.TimelineLimit > maxTimelineLimit {
		return mxerr.InvalidParam("timeline_limit must be between 0 and %d", maxTimelineLimit)
	}
	if len(c.RequiredState) > maxRequiredState {
		return mxerr.InvalidParam("Too many required_state entries")
	}
	for _, rs := range c.RequiredState {
		if len(rs) != 2 {
			return mxerr.InvalidParam("required_state entries are [type, state_key]")
		}
	}
	return nil
}

// unknownPos is the error for a position the server does not know
// (expired, from before a restart, or never given): the client starts
// its connection over.
func unknownPos() *mxerr.Error {
	return &mxerr.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN_POS", Message: "Unknown position"}
}
