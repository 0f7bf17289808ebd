package slidingsync

import "github.com/myelin-chat/myelin/internal/clientevent"

// Response is a sliding sync answer, with the field names clients read.
type Response struct {
	Pos        string                `json:"pos"`
	Lists      map[string]ListResult `json:"lists"`
	Rooms      map[string]*Room      `json:"rooms"`
	Extensions map[string]any        `json:"extensions"`
	// changed is set when a list's count changed, or an extension has
	// news: what makes an answer without rooms worth sending.
	changed bool
}

func newResponse() *Response {
	return &Response{Lists: map[string]ListResult{}, Rooms: map[string]*Room{}, Extensions: map[string]any{}}
}

func (r *Response) empty() bool { return len(r.Rooms) == 0 && !r.changed }

// ListResult is a list's answer: how many rooms it has. Rooms are
// placed by their bump_stamp, as clients sort them themselves.
type ListResult struct {
	Count int `json:"count"`
}

// Room is one room of an answer; absent fields did not change.
type Room struct {
	Name              string                 `json:"name,omitempty"`
	Avatar            string                 `json:"avatar,omitempty"`
	Heroes            []Hero                 `json:"heroes,omitempty"`
	Initial           bool                   `json:"initial,omitempty"`
	IsDM              bool                   `json:"is_dm,omitempty"`
	RequiredState     []clientevent.Event    `json:"required_state,omitempty"`
	Timeline          []clientevent.Event    `json:"timeline,omitempty"`
	PrevBatch         string                 `json:"prev_batch,omitempty"`
	Limited           bool                   `json:"limited,omitempty"`
	NumLive           *int                   `json:"num_live,omitempty"`
	JoinedCount       *int64                 `json:"joined_count,omitempty"`
	InvitedCount      *int64                 `json:"invited_count,omitempty"`
	NotificationCount *int64                 `json:"notification_count,omitempty"`
	HighlightCount    *int64                 `json:"highlight_count,omitempty"`
	BumpStamp         int64                  `json:"bump_stamp,omitempty"`
	InviteState       []clientevent.Stripped `json:"invite_state,omitempty"`
	KnockState        []clientevent.Stripped `json:"knock_state,omitempty"`
	ExpandedTimeline  bool                   `json:"unstable_expanded_timeline,omitempty"`
}

// Hero is a member shown for a room without a name.
type Hero struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"displayname,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}
