package server

import (
	"context"
	"time"

	"github.com/myelin-chat/myelin/internal/delayed"
	"github.com/myelin-chat/myelin/internal/threadsubs"
)

// buildDelayed makes the MSC4140 delayed events service, loading the
// events still scheduled (those of before a restart fire when due, or at
// once when overdue). It listens to new state events after the services
// built before it.
func (s *Server) buildDelayed(ctx context.Context) error {
	d, err := delayed.New(ctx, delayed.Options{Store: s.db, Rooms: s.engine, Bus: s.changes, Log: s.log,
		MaxDelay: time.Duration(s.cfg.Rooms.MaxEventDelayMS) * time.Millisecond})
	if err != nil {
		return err
	}
	s.delayed = d
	return nil
}

// ThreadSubscriptions is the MSC4306 thread subscriptions service, whose
// ChangesSince sliding sync's MSC4308 extension reads.
func (s *Server) ThreadSubscriptions() *threadsubs.Service { return s.threadSubs }
