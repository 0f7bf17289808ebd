package accountdata

import (
	"context"
	"encoding/json"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// tagContent is m.tag's content. Tags keep whatever fields the client
// gave them (order and custom ones), as Synapse does.
type tagContent struct {
	Tags map[string]json.RawMessage `json:"tags"`
}

// Tags lists a room's tags for a user (an empty set when none).
func (s *Service) Tags(ctx context.Context, userID, roomID string) (map[string]json.RawMessage, error) {
	raw, err := s.Stored(ctx, userID, roomID, TypeTag)
	if err != nil {
		return nil, err
	}
	return parseTags(raw).Tags, nil
}

func parseTags(raw json.RawMessage) tagContent {
	var c tagContent
	_ = json.Unmarshal(raw, &c)
	if c.Tags == nil {
		c.Tags = map[string]json.RawMessage{}
	}
	return c
}

// SetTag adds or replaces a tag on a room; body is the tag's object
// (order and any other fields).
// A room's tags together may take at most maxBytes (every /sync that
// carries the room's account data carries them all).
func (s *Service) SetTag(ctx context.Context, userID, roomID, tag string, body json.RawMessage, maxBytes int) error {
	if len(tag) > 255 {
		return mxerr.InvalidParam("Tag names are at most 255 bytes")
	}
	return s.Update(ctx, userID, roomID, TypeTag, func(old json.RawMessage) (json.RawMessage, error) {
		c := parseTags(old)
		c.Tags[tag] = body
		raw, err := json.Marshal(c)
		if err == nil && len(raw) > maxBytes {
			return nil, mxerr.TooLarge("A room's tags may take at most %d bytes", maxBytes)
		}
		return raw, err
	})
}

// DeleteTag removes a tag from a room; removing an absent tag is no
// error, as in Synapse.
func (s *Service) DeleteTag(ctx context.Context, userID, roomID, tag string) error {
	return s.Update(ctx, userID, roomID, TypeTag, func(old json.RawMessage) (json.RawMessage, error) {
		c := parseTags(old)
		delete(c.Tags, tag)
		return json.Marshal(c)
	})
}
