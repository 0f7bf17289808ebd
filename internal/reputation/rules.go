package reputation

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
)

// RuleTypes are the state event types a feed's rules are read from, with
// the kind each names: the spec's m.policy.rule.* (moderation policy
// lists), the m.room.rule.* names of MSC2313's first draft and
// Mjolnir's org.matrix.mjolnir.rule.*, which Mjolnir, Draupnir and
// Meowlnir still read (and older lists still hold).
var RuleTypes = map[string]Kind{
	"m.policy.rule.user":             KindUser,
	"m.policy.rule.room":             KindRoom,
	"m.policy.rule.server":           KindServer,
	"m.room.rule.user":               KindUser,
	"m.room.rule.room":               KindRoom,
	"m.room.rule.server":             KindServer,
	"org.matrix.mjolnir.rule.user":   KindUser,
	"org.matrix.mjolnir.rule.room":   KindRoom,
	"org.matrix.mjolnir.rule.server": KindServer,
}

// recommendations maps each recommendation that lists an entity to
// whether it asks for a takedown: m.ban and Mjolnir's unstable name for
// it; MSC4204's m.takedown and the unstable name Meowlnir and Draupnir
// write (org.matrix.msc4204.takedown). Others (Meowlnir's
// fi.mau.meowlnir.unban and .mute, anything unknown) list nothing, as
// the spec says unknown recommendations are ignored.
var recommendations = map[string]bool{
	"m.ban":                       false,
	"org.matrix.mjolnir.ban":      false,
	"m.takedown":                  true,
	"org.matrix.msc4204.takedown": true,
}

// maxEntityBytes bounds an entity: longer than any identifier (255
// bytes) with room for a glob around one.
const maxEntityBytes = 1024

// Rule is one policy rule of a feed.
type Rule struct {
	Kind Kind
	// Entity is the literal or glob entity; "" for a rule that lists
	// only a hash.
	Entity string
	// SHA256 is MSC4205's hash of the entity, when the rule carries one
	// (HasHash).
	SHA256  [32]byte
	HasHash bool
	Reason  string
	// Takedown is set for m.takedown (and its unstable name).
	Takedown bool
}

// Glob reports whether the rule's entity is a glob.
func (r Rule) Glob() bool { return strings.ContainsAny(r.Entity, "*?") }

type ruleContent struct {
	Entity         any              `json:"entity"`
	Reason         any              `json:"reason"`
	Recommendation any              `json:"recommendation"`
	Hashes         *json.RawMessage `json:"hashes"`
	UnstableHashes *json.RawMessage `json:"org.matrix.msc4205.hashes"`
}

// ParseRule reads a policy rule from a state event's type and content.
// ok is false when the event lists nothing: not a rule type, empty or
// redacted content (a removed rule), an unknown recommendation, or no
// usable entity nor hash. Content comes from other servers: every field
// is checked, none trusted.
func ParseRule(eventType string, content []byte) (r Rule, ok bool) {
	kind, known := RuleTypes[eventType]
	if !known {
		return Rule{}, false
	}
	var c ruleContent
	if json.Unmarshal(content, &c) != nil {
		return Rule{}, false
	}
	rec, _ := c.Recommendation.(string)
	takedown, known := recommendations[rec]
	if !known {
		return Rule{}, false
	}
	r = Rule{Kind: kind, Takedown: takedown}
	r.Reason, _ = c.Reason.(string)
	if e, _ := c.Entity.(string); e != "" && len(e) <= maxEntityBytes {
		r.Entity = normalise(kind, e)
	}
	for _, h := range []*json.RawMessage{c.Hashes, c.UnstableHashes} {
		if h == nil || r.HasHash {
			continue
		}
		var hashes map[string]any
		if json.Unmarshal(*h, &hashes) != nil {
			continue
		}
		if s, _ := hashes["sha256"].(string); s != "" {
			r.SHA256, r.HasHash = decodeHash(s)
		}
	}
	if r.Entity == "" && !r.HasHash {
		return Rule{}, false
	}
	return r, true
}

// decodeHash decodes a base64 SHA-256. MSC4205's example, Meowlnir
// (mautrix-go's DecodeSHA256) and Draupnir write standard base64 with
// padding; the unpadded and URL-safe forms are accepted too, since the
// spec's own base64 is unpadded.
func decodeHash(s string) ([32]byte, bool) {
	var out [32]byte
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == sha256.Size {
			copy(out[:], b)
			return out, true
		}
	}
	return out, false
}

// HashEntity is MSC4205's hash of an entity: SHA-256 of the ID as it is.
func HashEntity(entity string) [32]byte { return sha256.Sum256([]byte(entity)) }

// HashString is HashEntity in the padded standard base64 MSC4205's
// example and today's writers use.
func HashString(entity string) string {
	h := HashEntity(entity)
	return base64.StdEncoding.EncodeToString(h[:])
}

// normalise folds what compares without case: server names (DNS is
// case-insensitive; Synapse's server ACLs match them so).
func normalise(kind Kind, entity string) string {
	if kind == KindServer {
		return strings.ToLower(entity)
	}
	return entity
}
