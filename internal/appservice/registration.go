// Package appservice is the homeserver's side of the application service
// API (spec "Application Service API"): registration files, the
// namespaces that decide which users, aliases and rooms an application
// service owns, the durable per-service transaction sender, and the
// queries and pings made to the service.
package appservice

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Registration is one application service's registration file (spec
// "Registration"), with its namespaces compiled.
type Registration struct {
	ID              string
	URL             string // empty: the service receives no requests
	ASToken         string
	HSToken         string
	SenderLocalpart string
	// RateLimited is false only when the file says rate_limited: false;
	// Synapse and the spec default to rate limiting.
	RateLimited      bool
	Protocols        []string
	ReceiveEphemeral bool
	// MSC3202 asks for device lists, one-time key counts and fallback
	// key types in transactions (ephemeral.go). DeviceMasquerading is
	// recorded only: device_id masquerading (spec v1.17) and device
	// management without UIA (MSC4190) are open to every service.
	MSC3202, DeviceMasquerading bool

	Users, Aliases, Rooms []Namespace
}

// Namespace is one entry of a namespace list: a regular expression that
// must match the whole identifier.
type Namespace struct {
	Exclusive bool
	Regex     *regexp.Regexp
}

type rawNamespace struct {
	Exclusive bool    `yaml:"exclusive"`
	Regex     *string `yaml:"regex"`
}

type rawRegistration struct {
	ID              *string `yaml:"id"`
	URL             *string `yaml:"url"`
	ASToken         *string `yaml:"as_token"`
	HSToken         *string `yaml:"hs_token"`
	SenderLocalpart *string `yaml:"sender_localpart"`
	RateLimited     *bool   `yaml:"rate_limited"`
	Namespaces      struct {
		Users   []rawNamespace `yaml:"users"`
		Aliases []rawNamespace `yaml:"aliases"`
		Rooms   []rawNamespace `yaml:"rooms"`
	} `yaml:"namespaces"`
	Protocols        []string `yaml:"protocols"`
	ReceiveEphemeral bool     `yaml:"receive_ephemeral"`
	PushEphemeral    bool     `yaml:"de.sorunome.msc2409.push_ephemeral"`
	PushEphemeralOld bool     `yaml:"push_ephemeral"`
	MSC3202          bool     `yaml:"org.matrix.msc3202"`
	DeviceMasquerade bool     `yaml:"device_masquerading"`
	MSC4190          bool     `yaml:"io.element.msc4190"`
}

// FieldError names the field of a registration that is wrong.
type FieldError struct {
	Field, Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Parse reads a registration file's YAML. Errors name the field.
func Parse(data []byte) (*Registration, error) {
	var raw rawRegistration
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	required := func(field string, v *string) (string, error) {
		if v == nil || *v == "" {
			return "", &FieldError{field, "required"}
		}
		return *v, nil
	}
	reg := &Registration{RateLimited: raw.RateLimited == nil || *raw.RateLimited, Protocols: raw.Protocols,
		ReceiveEphemeral: raw.ReceiveEphemeral || raw.PushEphemeral || raw.PushEphemeralOld, MSC3202: raw.MSC3202, DeviceMasquerading: raw.DeviceMasquerade || raw.MSC4190}
	var err error
	if reg.ID, err = required("id", raw.ID); err != nil {
		return nil, err
	}
	if reg.ASToken, err = required("as_token", raw.ASToken); err != nil {
		return nil, err
	}
	if reg.HSToken, err = required("hs_token", raw.HSToken); err != nil {
		return nil, err
	}
	if reg.SenderLocalpart, err = required("sender_localpart", raw.SenderLocalpart); err != nil {
		return nil, err
	}
	if strings.ContainsAny(reg.SenderLocalpart, ":@ ") {
		return nil, &FieldError{"sender_localpart", "not a localpart"}
	}
	if reg.ASToken == reg.HSToken {
		return nil, &FieldError{"hs_token", "must differ from as_token"}
	}
	// The spec allows url: null for a service that only sends.
	if raw.URL != nil && *raw.URL != "" {
		u, err := url.Parse(*raw.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, &FieldError{"url", "want an http(s) URL"}
		}
		reg.URL = strings.TrimSuffix(*raw.URL, "/")
	}
	for _, l := range []struct {
		name string
		raw  []rawNamespace
		out  *[]Namespace
	}{{"users", raw.Namespaces.Users, &reg.Users}, {"aliases", raw.Namespaces.Aliases, &reg.Aliases}, {"rooms", raw.Namespaces.Rooms, &reg.Rooms}} {
		for i, n := range l.raw {
			field := fmt.Sprintf("namespaces.%s[%d].regex", l.name, i)
			if n.Regex == nil {
				return nil, &FieldError{field, "required"}
			}
			// Anchored as Synapse does (re.match on the whole ID, its
			// regexes written for full matches).
			re, err := regexp.Compile("^(?:" + *n.Regex + ")$")
			if err != nil {
				return nil, &FieldError{field, err.Error()}
			}
			*l.out = append(*l.out, Namespace{Exclusive: n.Exclusive, Regex: re})
		}
	}
	return reg, nil
}

// Load reads and parses the registration files; an error names the file
// and the field.
func Load(paths []string) ([]*Registration, error) {
	var regs []*Registration
	ids, tokens := map[string]string{}, map[string]string{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("appservice %s: %w", p, err)
		}
		reg, err := Parse(data)
		if err != nil {
			return nil, fmt.Errorf("appservice %s: %w", p, err)
		}
		if other, dup := ids[reg.ID]; dup {
			return nil, fmt.Errorf("appservice %s: id: %q is also the id of %s", p, reg.ID, other)
		}
		if other, dup := tokens[reg.ASToken]; dup {
			return nil, fmt.Errorf("appservice %s: as_token: also the as_token of %s", p, other)
		}
		ids[reg.ID], tokens[reg.ASToken] = p, p
		regs = append(regs, reg)
	}
	return regs, nil
}

func matches(list []Namespace, s string, exclusiveOnly bool) bool {
	for _, n := range list {
		if (!exclusiveOnly || n.Exclusive) && n.Regex.MatchString(s) {
			return true
		}
	}
	return false
}

// OwnsUser says whether userID is the service's sender or in its user
// namespaces.
func (r *Registration) OwnsUser(userID, serverName string) bool {
	return userID == "@"+r.SenderLocalpart+":"+serverName || matches(r.Users, userID, false)
}

// InUsers says whether userID is in the user namespaces.
func (r *Registration) InUsers(userID string) bool { return matches(r.Users, userID, false) }

// InAliases says whether alias is in the alias namespaces.
func (r *Registration) InAliases(alias string) bool { return matches(r.Aliases, alias, false) }

// InRooms says whether roomID is in the room namespaces.
func (r *Registration) InRooms(roomID string) bool { return matches(r.Rooms, roomID, false) }

// Registry is the set of configured application services.
type Registry struct {
	ServerName string
	list       []*Registration
	byToken    map[string]*Registration
	byID       map[string]*Registration
}

// NewRegistry indexes the registrations.
func NewRegistry(serverName string, regs []*Registration) *Registry {
	r := &Registry{ServerName: serverName, list: regs, byToken: map[string]*Registration{}, byID: map[string]*Registration{}}
	for _, reg := range regs {
		r.byToken[reg.ASToken], r.byID[reg.ID] = reg, reg
	}
	return r
}

// All lists the registrations.
func (r *Registry) All() []*Registration {
	if r == nil {
		return nil
	}
	return r.list
}

// ByToken finds the service whose as_token this is.
func (r *Registry) ByToken(token string) *Registration {
	if r == nil {
		return nil
	}
	return r.byToken[token]
}

// ByID finds a service by its id.
func (r *Registry) ByID(id string) *Registration {
	if r == nil {
		return nil
	}
	return r.byID[id]
}

// ExclusiveUser returns the service that claims userID exclusively
// (or as its sender), nil if none does.
func (r *Registry) ExclusiveUser(userID string) *Registration {
	for _, reg := range r.All() {
		if userID == "@"+reg.SenderLocalpart+":"+r.ServerName || matches(reg.Users, userID, true) {
			return reg
		}
	}
	return nil
}

// ExclusiveAlias returns the service that claims alias exclusively.
func (r *Registry) ExclusiveAlias(alias string) *Registration {
	for _, reg := range r.All() {
		if matches(reg.Aliases, alias, true) {
			return reg
		}
	}
	return nil
}

// UserInterested returns the services whose user namespaces hold userID
// (the services to ask about an unknown user).
func (r *Registry) UserInterested(userID string) []*Registration {
	var out []*Registration
	for _, reg := range r.All() {
		if reg.URL != "" && reg.InUsers(userID) {
			out = append(out, reg)
		}
	}
	return out
}

// AliasInterested returns the services whose alias namespaces hold alias.
func (r *Registry) AliasInterested(alias string) []*Registration {
	var out []*Registration
	for _, reg := range r.All() {
		if reg.URL != "" && reg.InAliases(alias) {
			out = append(out, reg)
		}
	}
	return out
}
