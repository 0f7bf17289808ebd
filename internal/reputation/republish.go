package reputation

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/store"
)

// Listing is one entity the blend lists, as the republished feed writes
// it: a literal or glob entity (Entity), or only a hash (Entity "").
type Listing struct {
	Kind     Kind
	Entity   string
	Hash     [32]byte
	Glob     bool
	Takedown bool
	Score    float64
}

// Listed is every entity whose blended score reaches threshold, with
// the feeds' own weights: literal entities as Check blends them (their
// hashed and glob listings counting too); a hash no literal entity of
// the feeds has, by the feeds listing that hash; a glob, by the feeds
// listing that same glob.
func (b *Blender) Listed(threshold float64) []Listing {
	type key struct {
		kind   Kind
		entity string
		hash   [32]byte
	}
	literal := map[key]bool{}
	hashScore, globScore := map[key]float64{}, map[key]float64{}
	takedown := map[key]bool{}
	b.mu.RLock()
	for _, f := range b.order {
		w := f.weight
		if f.allow {
			w = -w
		}
		seen := map[key]bool{}
		for _, r := range f.rules {
			var k key
			switch {
			case r.Entity != "" && r.Glob():
				k = key{kind: r.Kind, entity: r.Entity}
				if !seen[k] {
					globScore[k] += w
				}
			case r.Entity != "":
				literal[key{kind: r.Kind, entity: r.Entity}] = true
				continue
			default:
				k = key{kind: r.Kind, hash: r.SHA256}
				if !seen[k] {
					hashScore[k] += w
				}
			}
			seen[k] = true
			takedown[k] = takedown[k] || (r.Takedown && !f.allow)
		}
	}
	b.mu.RUnlock()
	var out []Listing
	known := map[key]bool{}
	for k := range literal {
		known[key{kind: k.kind, hash: HashEntity(k.entity)}] = true
		v := b.blend(k.kind, k.entity, func(f *feed) (float64, bool, bool) { return f.weight, f.allow, true })
		if reaches(v.Score, threshold) {
			out = append(out, Listing{Kind: k.kind, Entity: k.entity, Hash: HashEntity(k.entity), Takedown: v.Takedown, Score: v.Score})
		}
	}
	for k, score := range hashScore {
		if !known[k] && reaches(score, threshold) {
			out = append(out, Listing{Kind: k.kind, Hash: k.hash, Takedown: takedown[k], Score: score})
		}
	}
	for k, score := range globScore {
		if reaches(score, threshold) {
			out = append(out, Listing{Kind: k.kind, Entity: k.entity, Glob: true, Takedown: takedown[k], Score: score})
		}
	}
	return out
}

// Republish modes.
const (
	RepublishPlain  = "plain"
	RepublishHashed = "hashed"
	RepublishBoth   = "both"
)

// Publisher is what republishing needs of rooms and aliases.
type Publisher struct {
	Rooms interface {
		CreateRoom(ctx context.Context, r rooms.CreateRequest) (string, error)
		Send(ctx context.Context, req rooms.SendRequest) (*rooms.Event, error)
	}
	Aliases interface {
		Create(ctx context.Context, userID string, isAdmin bool, alias, roomID string) error
	}
}

// republishedRule is a rule the republished feed should hold.
type republishedRule struct {
	typ, stateKey string
	content       []byte
}

// wantedRules are the state the republished feed should hold: state
// keys "rule:<entity>" (plain, both) or "hash:<base64 hash>" (hashed,
// and hash-only listings in both). Globs cannot be hashed: the hashed
// mode leaves them out (a hashed feed must reveal no plain entity).
func wantedRules(listed []Listing, mode string) map[rooms.StateKey][]byte {
	out := map[rooms.StateKey][]byte{}
	for _, l := range listed {
		rec := "m.ban"
		if l.Takedown {
			rec = "m.takedown"
		}
		content := map[string]any{"recommendation": rec, "reason": fmt.Sprintf("blended score %.3g", l.Score)}
		hash := base64.StdEncoding.EncodeToString(l.Hash[:])
		var stateKey string
		switch {
		case mode == RepublishHashed || l.Entity == "":
			if l.Glob {
				continue
			}
			content["hashes"] = map[string]string{"sha256": hash}
			stateKey = "hash:" + hash
		default:
			content["entity"] = l.Entity
			if mode == RepublishBoth && !l.Glob {
				content["hashes"] = map[string]string{"sha256": hash}
			}
			stateKey = "rule:" + l.Entity
		}
		raw, _ := json.Marshal(content)
		out[rooms.StateKey{Type: "m.policy.rule." + string(l.Kind), StateKey: stateKey}] = raw
	}
	return out
}

// republish brings the republished feed in line with the blend: it
// creates the room (and its alias) the first time, then sends each rule
// that changed and empties each rule no longer listed. Run's goroutine
// calls it after every change it handled.
func (s *Service) republish(ctx context.Context) error {
	conf := s.o.Config.Republish
	if conf.Alias == "" || s.o.Publisher.Rooms == nil {
		return nil
	}
	version := s.o.Blender.Version()
	if s.republished != "" && version == s.republishedAt {
		return nil // nothing changed since the last complete rewrite
	}
	roomID, err := s.republishRoom(ctx, conf.Alias)
	if err != nil {
		return err
	}
	threshold := conf.Threshold
	if threshold == 0 {
		threshold = DefaultThreshold
	}
	mode := conf.Mode
	if mode == "" {
		mode = RepublishPlain
	}
	want := wantedRules(s.o.Blender.Listed(threshold), mode)
	state, err := s.o.Rooms.CurrentState(ctx, roomID)
	if err != nil {
		return err
	}
	var have []rooms.StateKey
	for k := range state {
		if _, ok := RuleTypes[k.Type]; ok {
			have = append(have, k)
		}
	}
	evs := map[rooms.StateKey]*rooms.Event{}
	if len(have) > 0 { // (no keys would load the whole state)
		if evs, err = s.o.Rooms.StateEvents(ctx, state, have...); err != nil {
			return err
		}
	}
	send := func(k rooms.StateKey, content []byte) error {
		sk := k.StateKey
		_, err := s.o.Publisher.Rooms.Send(ctx, rooms.SendRequest{RoomID: roomID, Sender: s.SystemUser(), Type: k.Type, StateKey: &sk, Content: json.RawMessage(content)})
		return err
	}
	var errs []error
	for k, ev := range evs {
		if _, rule := RuleTypes[k.Type]; !rule {
			continue
		}
		if _, ok := want[k]; !ok && len(bytes.TrimSpace(ev.Content())) > 2 {
			errs = append(errs, send(k, []byte("{}")))
		}
	}
	keys := make([]rooms.StateKey, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b rooms.StateKey) int { return strings.Compare(a.Type+a.StateKey, b.Type+b.StateKey) })
	for _, k := range keys {
		if ev := evs[k]; ev != nil && sameJSON(ev.Content(), want[k]) {
			continue
		}
		errs = append(errs, send(k, want[k]))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s.republishedAt = version
	return nil
}

func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return bytes.Equal(ja, jb)
}

// republishRoom is the republished feed's room: the alias's room, or a
// new public room the feeds' user creates, with the alias.
func (s *Service) republishRoom(ctx context.Context, alias string) (string, error) {
	if s.republished != "" {
		return s.republished, nil
	}
	if serverOf(alias) != s.o.ServerName {
		return "", fmt.Errorf("reputation.republish.alias %s is not an alias of this server", alias)
	}
	roomID, _, err := s.o.Aliases.Local.Resolve(ctx, alias)
	if err != nil && !isNotFound(err) {
		return "", err
	}
	if err != nil {
		name := "Blended reputation feed of " + s.o.ServerName
		topic := "The entities this server's reputation feeds list together (issue 16 item 4); kept by " + s.SystemUser()
		roomID, err = s.o.Publisher.Rooms.CreateRoom(ctx, rooms.CreateRequest{Creator: s.SystemUser(), Preset: rooms.PresetPublicChat,
			Name: &name, Topic: &topic, CanonicalAlias: alias,
			// Public and world-readable, so that any server or user can
			// subscribe to it.
			InitialState: []rooms.StateEvent{
				{Type: "m.room.join_rules", Content: json.RawMessage(`{"join_rule":"public"}`)},
				{Type: "m.room.history_visibility", Content: json.RawMessage(`{"history_visibility":"world_readable"}`)},
			},
			PowerLevelOverride: map[string]json.RawMessage{"events_default": json.RawMessage("50")}})
		if err != nil {
			return "", err
		}
		if err := s.o.Publisher.Aliases.Create(ctx, s.SystemUser(), true, alias, roomID); err != nil {
			return "", err
		}
	}
	s.republished = roomID
	return roomID, nil
}

func isNotFound(err error) bool {
	if errors.Is(err, store.ErrNotFound) {
		return true
	}
	var m *mxerr.Error
	return errors.As(err, &m) && m.Code == "M_NOT_FOUND"
}
