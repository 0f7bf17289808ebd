package appservice

import (
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/store"
)

// interestTTL is how long a room's "has a namespaced member or alias"
// answer is reused. Membership changes are seen in the stream and drop
// the room's answer at once; an alias created or deleted (which is no
// event) is noticed within this time, as Synapse's alias cache is
// invalidated.
const interestTTL = 30 * time.Second

// interestCaches keeps, per service, whether each room interests it
// because of its members or aliases, across batches: without it every
// batch asked the database for the joined members of every room in it
// (BenchmarkAppServiceThroughput: a query per room per transaction).
// Each service's map is only touched by that service's worker.
type interestCaches struct {
	m sync.Map // service id -> *roomInterests
}

type roomInterests struct {
	rooms map[string]bool
	since time.Time
}

// forBatch returns the service's room answers, valid for rows: those of
// rooms whose membership or canonical alias rows change are dropped,
// and all of them once interestTTL has passed.
func (c *interestCaches) forBatch(asID string, rows []store.EventRow) map[string]bool {
	v, _ := c.m.Load(asID)
	ri, _ := v.(*roomInterests)
	if ri == nil || time.Since(ri.since) > interestTTL {
		ri = &roomInterests{rooms: map[string]bool{}, since: time.Now()}
		c.m.Store(asID, ri)
	}
	for _, r := range rows {
		if r.Type == spec.MRoomMember || r.Type == "m.room.canonical_alias" {
			delete(ri.rooms, r.RoomID)
		}
	}
	return ri.rooms
}
