// Package uia implements User-Interactive Authentication (client-server
// spec, "User-Interactive Authentication API"): sessions that collect
// completed stages across requests until one of the endpoint's flows is
// done. Sessions live in the database so that they survive restarts.
package uia

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/periodic"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store is the storage UIA needs.
type Store interface {
	CreateUIASession(ctx context.Context, s store.UIASession) error
	GetUIASession(ctx context.Context, id string) (store.UIASession, error)
	UpdateUIASession(ctx context.Context, s store.UIASession) error
	DeleteUIASession(ctx context.Context, id string) error
	TakeExpiredUIASessions(ctx context.Context, nowTS int64) ([]store.UIASession, error)
}

// Auth is the "auth" object of a request.
type Auth struct {
	Type    string
	Session string
	// Fields holds every key of the object, for the stage to read.
	Fields map[string]json.RawMessage
}

// ParseAuth decodes an "auth" object; a missing object gives a nil Auth.
func ParseAuth(raw json.RawMessage) (*Auth, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, mxerr.BadJSON("auth must be an object")
	}
	a := &Auth{Fields: fields}
	if err := unmarshalOptional(fields["type"], &a.Type); err != nil {
		return nil, mxerr.BadJSON("auth.type must be a string")
	}
	if err := unmarshalOptional(fields["session"], &a.Session); err != nil {
		return nil, mxerr.BadJSON("auth.session must be a string")
	}
	return a, nil
}

func unmarshalOptional(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, v)
}

// Session is a session in progress.
type Session struct {
	ID        string
	Localpart string
	Completed []string
	// Data carries what stages remember (a reserved registration token).
	Data map[string]json.RawMessage
	raw  store.UIASession
}

// Stage is one authentication type.
type Stage interface {
	Type() string
	// Params are the stage's entry in the challenge's "params" (nil: none).
	Params() any
	// Complete checks the client's auth object, returning a Matrix error
	// (usually M_FORBIDDEN) when it is wrong.
	Complete(ctx context.Context, s *Session, a *Auth) error
}

// Refuse marks a stage's error as the request's final answer rather
// than a failed attempt to answer again: Synapse answers 403 "Invalid
// auth", with no new challenge, when the auth names a user other than
// the requester (validate_user_via_ui_auth), so that a user cannot act on
// their own devices with someone else's credentials.
func Refuse(err *mxerr.Error) error { return refusal{err} }

type refusal struct{ err *mxerr.Error }

func (r refusal) Error() string { return r.err.Error() }

// Flow is the list of stage types that together authenticate a request.
type Flow []string

// Request is what identifies an operation across the rounds of a session.
type Request struct {
	Method, URI string
	// Localpart is the authenticated user, "" for registration.
	Localpart string
	Auth      *Auth
}

// Manager runs sessions.
type Manager struct {
	store    Store
	lifetime time.Duration
	now      func() time.Time
	// onExpire releases what an abandoned session reserved.
	onExpire func(ctx context.Context, data map[string]json.RawMessage)
}

// NewManager makes a manager; onExpire may be nil.
func NewManager(st Store, lifetime time.Duration, onExpire func(context.Context, map[string]json.RawMessage)) *Manager {
	return &Manager{store: st, lifetime: lifetime, now: time.Now, onExpire: onExpire}
}

// Check runs one round. It returns the session once a flow is complete;
// until then it returns the 401 challenge as a *mxerr.Error.
func (m *Manager) Check(ctx context.Context, req Request, flows []Flow, stages []Stage) (*Session, error) {
	sess, err := m.session(ctx, req)
	if err != nil {
		return nil, err
	}
	if a := req.Auth; a != nil && a.Type != "" {
		stage := findStage(stages, a.Type)
		if stage == nil || !inSomeFlow(flows, a.Type) {
			return nil, m.challenge(sess, flows, stages, mxerr.BadJSON("Unsupported authentication type %q", a.Type))
		}
		if err := stage.Complete(ctx, sess, a); err != nil {
			var r refusal
			if errors.As(err, &r) {
				return nil, r.err
			}
			e, ok := mxerr.As(err)
			if !ok {
				return nil, err
			}
			return nil, m.challenge(sess, flows, stages, e)
		}
		if !slices.Contains(sess.Completed, a.Type) {
			sess.Completed = append(sess.Completed, a.Type)
		}
		if err := m.save(ctx, sess); err != nil {
			return nil, err
		}
	}
	for _, f := range flows {
		if done(f, sess.Completed) {
			return sess, nil
		}
	}
	return nil, m.challenge(sess, flows, stages, nil)
}

// Finish deletes a session whose operation succeeded.
func (m *Manager) Finish(ctx context.Context, s *Session) error {
	return m.store.DeleteUIASession(ctx, s.ID)
}

// Remember stores stage data in the session.
func (m *Manager) Remember(ctx context.Context, s *Session, key string, value any) error {
	raw, err := json.Marshal(value)
	if err != nil {
		return err
	}
	s.Data[key] = raw
	return m.save(ctx, s)
}

func (m *Manager) session(ctx context.Context, req Request) (*Session, error) {
	if req.Auth == nil || req.Auth.Session == "" {
		return m.create(ctx, req)
	}
	raw, err := m.store.GetUIASession(ctx, req.Auth.Session)
	if errors.Is(err, store.ErrNotFound) || err == nil && raw.ExpiresTS < m.now().UnixMilli() {
		return nil, &mxerr.Error{Status: http.StatusBadRequest, Code: "M_UNKNOWN", Message: "Unknown or expired UIA session"}
	}
	if err != nil {
		return nil, err
	}
	// Synapse's rule: a session authenticates one operation, not whatever
	// the client sends next with the same session ID.
	if raw.Method != req.Method || raw.URI != req.URI || raw.Localpart != req.Localpart {
		return nil, mxerr.Forbidden("Requested operation has changed during the UI authentication session")
	}
	s := &Session{ID: raw.ID, Localpart: raw.Localpart, raw: raw, Data: map[string]json.RawMessage{}}
	if err := json.Unmarshal(raw.Completed, &s.Completed); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw.Data, &s.Data); err != nil {
		return nil, err
	}
	return s, nil
}

func (m *Manager) create(ctx context.Context, req Request) (*Session, error) {
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	raw := store.UIASession{
		ID: base64.RawURLEncoding.EncodeToString(b[:]), Method: req.Method, URI: req.URI, Localpart: req.Localpart,
		Completed: json.RawMessage("[]"), Data: json.RawMessage("{}"), ExpiresTS: m.now().Add(m.lifetime).UnixMilli(),
	}
	if err := m.store.CreateUIASession(ctx, raw); err != nil {
		return nil, err
	}
	return &Session{ID: raw.ID, Localpart: req.Localpart, Completed: []string{}, Data: map[string]json.RawMessage{}, raw: raw}, nil
}

func (m *Manager) save(ctx context.Context, s *Session) error {
	completed, err := json.Marshal(s.Completed)
	if err != nil {
		return err
	}
	data, err := json.Marshal(s.Data)
	if err != nil {
		return err
	}
	s.raw.Completed, s.raw.Data = completed, data
	return m.store.UpdateUIASession(ctx, s.raw)
}

// challenge is the 401 response: flows, params, session, completed, and
// the errcode of a failed stage if there was one.
func (m *Manager) challenge(s *Session, flows []Flow, stages []Stage, failed *mxerr.Error) *mxerr.Error {
	type flowJSON struct {
		Stages []string `json:"stages"`
	}
	fl := make([]flowJSON, len(flows))
	for i, f := range flows {
		fl[i] = flowJSON{Stages: f}
	}
	params := map[string]any{}
	for _, st := range stages {
		if p := st.Params(); p != nil && inSomeFlow(flows, st.Type()) {
			params[st.Type()] = p
		}
	}
	e := &mxerr.Error{Status: http.StatusUnauthorized, Extra: map[string]any{
		"flows": fl, "params": params, "session": s.ID, "completed": s.Completed,
	}}
	if failed != nil {
		e.Code, e.Message = failed.Code, failed.Message
	}
	return e
}

// Run deletes expired sessions every interval until ctx ends.
func (m *Manager) Run(ctx context.Context, interval time.Duration) error {
	periodic.Every(ctx, interval, func() { m.Sweep(ctx) })
	return nil
}

// Sweep deletes expired sessions now, releasing what they reserved.
func (m *Manager) Sweep(ctx context.Context) {
	expired, err := m.store.TakeExpiredUIASessions(ctx, m.now().UnixMilli())
	if err != nil || m.onExpire == nil {
		return
	}
	for _, s := range expired {
		data := map[string]json.RawMessage{}
		if json.Unmarshal(s.Data, &data) == nil {
			m.onExpire(ctx, data)
		}
	}
}

func findStage(stages []Stage, typ string) Stage {
	for _, s := range stages {
		if s.Type() == typ {
			return s
		}
	}
	return nil
}

func inSomeFlow(flows []Flow, typ string) bool {
	for _, f := range flows {
		if slices.Contains(f, typ) {
			return true
		}
	}
	return false
}

func done(flow Flow, completed []string) bool {
	for _, st := range flow {
		if !slices.Contains(completed, st) {
			return false
		}
	}
	return true
}
