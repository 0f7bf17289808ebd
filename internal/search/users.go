package search

import (
	"context"
	"encoding/json"
	"sort"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/store"
)

// UserStore is the storage the user directory reads.
type UserStore interface {
	MembershipsOf(ctx context.Context, userID string, memberships ...string) ([]store.RoomMembership, error)
	PublicRoomsByJoinRule(ctx context.Context) ([][2]string, error)
	JoinedMembersOf(ctx context.Context, roomIDs []string) ([]store.DirectoryMember, error)
	LocalDirectoryUsers(ctx context.Context) ([]store.DirectoryLocalUser, error)
}

// Users serves the user directory (spec "User directory"), computed at
// query time from the rooms' current state and the local profiles
// rather than kept in a table of its own: the users who share a room
// with the searcher or are in a public room and, with SearchAllUsers,
// every local user (Synapse's rules).
type Users struct {
	store          UserStore
	serverName     string
	searchAllUsers bool
	reputation     UserScreen
}

// NewUsers makes the user directory.
func NewUsers(s UserStore, serverName string, searchAllUsers bool, opts ...UsersOption) *Users {
	u := &Users{store: s, serverName: serverName, searchAllUsers: searchAllUsers}
	for _, o := range opts {
		o(u)
	}
	return u
}

// DirectoryUser is one result.
type DirectoryUser struct {
	UserID      string  `json:"user_id"`
	DisplayName *string `json:"display_name,omitempty"`
	AvatarURL   *string `json:"avatar_url,omitempty"`
	// shared is set for users sharing a room with the searcher, who come
	// first (as Synapse ranks them).
	shared bool
}

// Default and greatest number of results.
const (
	DirectoryDefaultLimit = 10
	DirectoryMaxLimit     = 50
)

// Search finds up to limit users whose user ID or display name has a word
// starting with each word of term, case-insensitively; limited reports
// that more matched.
func (u *Users) Search(ctx context.Context, searcher, term string, limit int) ([]DirectoryUser, bool, error) {
	words := Words(term)
	cands, err := u.candidates(ctx, searcher)
	if err != nil {
		return nil, false, err
	}
	var out []DirectoryUser
	for _, c := range cands {
		if matches(words, c) && !u.hiddenUser(ctx, c.UserID) {
			out = append(out, *c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.shared != b.shared {
			return a.shared
		}
		if (a.DisplayName != nil) != (b.DisplayName != nil) {
			return a.DisplayName != nil
		}
		if (a.AvatarURL != nil) != (b.AvatarURL != nil) {
			return a.AvatarURL != nil
		}
		return a.UserID < b.UserID
	})
	if len(out) > limit {
		return out[:limit], true, nil
	}
	if out == nil {
		out = []DirectoryUser{}
	}
	return out, false, nil
}

// matches reports whether every word prefixes a word of the user's ID or
// display name (Synapse's prefix search; an empty term matches nobody).
func matches(words []string, c *DirectoryUser) bool {
	if len(words) == 0 {
		return false
	}
	text := c.UserID
	if c.DisplayName != nil {
		text += " " + *c.DisplayName
	}
	tokens := Words(text)
	for _, w := range words {
		found := false
		for _, t := range tokens {
			if strings.HasPrefix(t, w) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// candidates are the users the searcher may find, with their profiles:
// local users' from their profile, remote users' from a membership event.
func (u *Users) candidates(ctx context.Context, searcher string) (map[string]*DirectoryUser, error) {
	mine, err := u.store.MembershipsOf(ctx, searcher, spec.Join)
	if err != nil {
		return nil, err
	}
	shared := map[string]bool{}
	var roomIDs []string
	for _, m := range mine {
		shared[m.RoomID] = true
		roomIDs = append(roomIDs, m.RoomID)
	}
	public, err := u.store.PublicRoomsByJoinRule(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range public {
		var ev struct {
			Content struct {
				JoinRule string `json:"join_rule"`
			} `json:"content"`
		}
		if json.Unmarshal([]byte(p[1]), &ev) == nil && ev.Content.JoinRule == spec.Public && !shared[p[0]] {
			roomIDs = append(roomIDs, p[0])
		}
	}
	members, err := u.store.JoinedMembersOf(ctx, roomIDs)
	if err != nil {
		return nil, err
	}
	out := map[string]*DirectoryUser{}
	for _, m := range members {
		c, ok := out[m.UserID]
		if !ok {
			c = &DirectoryUser{UserID: m.UserID}
			var ev struct {
				Content struct {
					DisplayName *string `json:"displayname"`
					AvatarURL   *string `json:"avatar_url"`
				} `json:"content"`
			}
			if json.Unmarshal([]byte(m.JSON), &ev) == nil {
				c.DisplayName, c.AvatarURL = nonEmpty(ev.Content.DisplayName), nonEmpty(ev.Content.AvatarURL)
			}
			out[m.UserID] = c
		}
		c.shared = c.shared || shared[m.RoomID]
	}
	return out, u.addLocalUsers(ctx, out)
}

// addLocalUsers gives local users their global profile and, with
// SearchAllUsers, adds every local user.
func (u *Users) addLocalUsers(ctx context.Context, out map[string]*DirectoryUser) error {
	locals, err := u.store.LocalDirectoryUsers(ctx)
	if err != nil {
		return err
	}
	for _, l := range locals {
		c, ok := out[l.UserID]
		if !ok {
			if !u.searchAllUsers {
				continue
			}
			c = &DirectoryUser{UserID: l.UserID}
			out[l.UserID] = c
		}
		c.DisplayName, c.AvatarURL = jsonString(l.DisplayName), jsonString(l.AvatarURL)
	}
	return nil
}

func nonEmpty(s *string) *string {
	if s == nil || *s == "" {
		return nil
	}
	return s
}

// jsonString decodes a profile field stored as a JSON value.
func jsonString(raw string) *string {
	var s string
	if raw == "" || json.Unmarshal([]byte(raw), &s) != nil {
		return nil
	}
	return nonEmpty(&s)
}
