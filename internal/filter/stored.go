package filter

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store keeps users' uploaded filters (POST /user/{userId}/filter).
type Store interface {
	CreateFilter(ctx context.Context, localpart, filterJSON string) (int64, error)
	GetFilter(ctx context.Context, localpart string, id int64) (string, error)
}

// Service stores and loads users' filters and bounds their size: a
// filter's lists are matched against every event of every /sync and
// /messages that uses it.
type Service struct {
	st       Store
	maxBytes int
}

// NewService makes the filter service; maxBytes bounds a filter's JSON.
func NewService(st Store, maxBytes int) *Service { return &Service{st: st, maxBytes: maxBytes} }

// CheckSize refuses a filter of n bytes when it is too large (M_TOO_LARGE).
func (s *Service) CheckSize(n int) error {
	if n > s.maxBytes {
		return mxerr.TooLarge("Filters are at most %d bytes", s.maxBytes)
	}
	return nil
}

// Create checks and stores a user's filter, returning its ID.
func (s *Service) Create(ctx context.Context, localpart string, raw json.RawMessage) (int64, error) {
	if err := s.CheckSize(len(raw)); err != nil {
		return 0, err
	}
	if _, err := ParseNew(raw); err != nil {
		return 0, err
	}
	return s.st.CreateFilter(ctx, localpart, string(raw))
}

// Get is a user's stored filter as uploaded; M_NOT_FOUND if the user has
// none with that ID.
func (s *Service) Get(ctx context.Context, localpart string, id int64) (json.RawMessage, error) {
	raw, err := s.st.GetFilter(ctx, localpart, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, mxerr.NotFound("No such filter")
	}
	if err != nil {
		return nil, err
	}
	return json.RawMessage(raw), nil
}

// Resolve reads a /sync filter parameter: empty (no filter), inline JSON,
// or the ID of one of the user's stored filters.
func (s *Service) Resolve(ctx context.Context, localpart, param string) (*Filter, error) {
	if param == "" {
		return &Filter{}, nil
	}
	if param[0] == '{' {
		if err := s.CheckSize(len(param)); err != nil {
			return nil, err
		}
		return ParseNew([]byte(param))
	}
	id, err := strconv.ParseInt(param, 10, 64)
	if err != nil {
		return nil, mxerr.InvalidParam("Invalid filter ID")
	}
	raw, err := s.Get(ctx, localpart, id)
	if err != nil {
		return nil, err
	}
	return Parse(raw)
}
