//go:build goolm

package appservice_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// BenchmarkAppServiceToDeviceLatency measures, on loopback, the time
// from a user's PUT /sendToDevice to a puppet's device returning to the
// moment the service's transaction carrying the message arrives (what an
// encrypted bridge waits for a room key), one message at a time; it
// reports p50 and p99. Run with -benchtime=Nx; MYELIN_TEST_POSTGRES
// selects PostgreSQL.
func BenchmarkAppServiceToDeviceLatency(b *testing.B) {
	ctx := context.Background()
	engine := testdb.Engines()[len(testdb.Engines())-1]
	r := newRawService(b, "hs1.test", true, true)
	s := testserver.Start(b, testdb.NewURL(b, engine), withFiles(r.path))
	if err := r.as.SetHomeserverURL(s.URL); err != nil {
		b.Fatal(err)
	}
	p1 := id.UserID(s.UserID("puppet_bench"))
	if err := r.as.Intent(p1).EnsureRegistered(ctx); err != nil {
		b.Fatal(err)
	}
	if status, body := r.asDo(s, "PUT", "/_matrix/client/v3/devices/BENCHDEV", p1.String(), "", map[string]any{}); status != 201 {
		b.Fatalf("creating the device: %d %v", status, body)
	}
	alice := s.Register("alice", "password")
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := alice.SendToDevice(ctx, event.NewEventType("org.example.bench"), &mautrix.ReqSendToDevice{
			Messages: map[id.UserID]map[id.DeviceID]*event.Content{p1: {"BENCHDEV": {Raw: map[string]any{"i": i}}}}}); err != nil {
			b.Fatal(err)
		}
		r.next("the message", func(txn *rawTxn) bool {
			for _, e := range txn.ToDevice {
				if e.Content["i"] == float64(i) {
					return true
				}
			}
			return false
		})
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
