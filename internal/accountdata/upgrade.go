package accountdata

import (
	"context"
	"encoding/json"
	"slices"
)

// CopyToReplacement carries a user's account data about a room over to
// the room that replaces it, as Synapse's
// copy_room_tags_and_direct_to_room does when the user joins the
// replacement: the old room's tags are added to the new room's, and the
// new room joins the m.direct list that names the old one, so that a
// favourite or a direct chat stays one after an upgrade. Tags that
// would take the new room's past maxTagBytes are not copied.
func (s *Service) CopyToReplacement(ctx context.Context, userID, oldID, newID string, maxTagBytes int) error {
	tags, err := s.Tags(ctx, userID, oldID)
	if err != nil {
		return err
	}
	withTags := func(old json.RawMessage) (json.RawMessage, bool) {
		c := parseTags(old)
		changed := false
		for tag, body := range tags {
			if _, ok := c.Tags[tag]; !ok {
				c.Tags[tag], changed = body, true
			}
		}
		raw, err := json.Marshal(c)
		return raw, changed && err == nil && len(raw) <= maxTagBytes
	}
	if err := s.updateIf(ctx, userID, newID, TypeTag, withTags); err != nil {
		return err
	}
	withDirect := func(old json.RawMessage) (json.RawMessage, bool) {
		// Entries that are not lists of strings are the client's, kept
		// as they are.
		var direct map[string]json.RawMessage
		if json.Unmarshal(old, &direct) != nil {
			return nil, false
		}
		for user, raw := range direct {
			var ids []string
			if json.Unmarshal(raw, &ids) != nil || !slices.Contains(ids, oldID) || slices.Contains(ids, newID) {
				continue
			}
			direct[user], _ = json.Marshal(append(ids, newID))
			out, err := json.Marshal(direct)
			return out, err == nil
		}
		return nil, false
	}
	return s.updateIf(ctx, userID, "", TypeDirect, withDirect)
}

// updateIf is Update for a change that may not apply: nothing is written
// unless fn reports a change.
func (s *Service) updateIf(ctx context.Context, userID, roomID, typ string, fn func(old json.RawMessage) (json.RawMessage, bool)) error {
	unlock := s.lock(userID)
	defer unlock()
	old, err := s.Stored(ctx, userID, roomID, typ)
	if err != nil {
		return err
	}
	content, changed := fn(old)
	if !changed {
		return nil
	}
	return s.Put(ctx, userID, roomID, typ, content)
}
