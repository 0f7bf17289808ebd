package slidingsync

import "testing"

func FuzzParseBody(f *testing.F) {
	f.Add([]byte(`{"conn_id":"room-list","lists":{"all_rooms":{"ranges":[[0,19]],"timeline_limit":1,"required_state":[["m.room.member","$LAZY"]],"filters":{"not_room_types":["m.space"]}}},"extensions":{"to_device":{"enabled":true,"since":"3"},"e2ee":{"enabled":true}}}`))
	f.Add([]byte(`{"lists":{"a":{"range":[0,0]}},"room_subscriptions":{"!r:x":{"timeline_limit":20}}}`))
	f.Add([]byte(`{"lists":{"a":{"ranges":[[5,1]]}}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"extensions":{"io.element.msc4308.thread_subscriptions":{"enabled":true,"limit":5},"thread_subscriptions":{"limit":-1}}}`))
	f.Add([]byte(`{"room_subscriptions":{"!peek:x\u0000":{"timeline_limit":1}},"lists":{"s":{"ranges":[[0,1]],"filters":{"spaces":["\ud800"]}}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := ParseBody(raw)
		if err != nil {
			return
		}
		for _, l := range b.Lists {
			for _, r := range l.Ranges {
				if len(r) != 2 || r[0] < 0 || r[1] < r[0] {
					t.Fatalf("accepted bad range %v", r)
				}
			}
			if l.TimelineLimit < 0 || l.TimelineLimit > maxTimelineLimit {
				t.Fatalf("accepted timeline_limit %d", l.TimelineLimit)
			}
		}
		for _, ts := range []*ThreadSubsRequest{b.Extensions.ThreadSubscriptions, b.Extensions.StableThreadSubscriptions} {
			if ts != nil && (ts.Limit < 0 || ts.Limit > maxThreadSubsLimit) {
				t.Fatalf("accepted thread_subscriptions limit %d", ts.Limit)
			}
		}
	})
}
