package typing

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/rooms"
)

func TestTyping(t *testing.T) {
	stream := rooms.NewStreamGen(10, nil)
	b := bus.New()
	s := New(stream, b)
	clock := time.Unix(1000, 0)
	s.now = func() time.Time { return clock }
	var woken []string
	var sent []bool
	b.Subscribe("sync", func(_ context.Context, c bus.Change) { woken = append(woken, c.(Changed).RoomID) }, TopicChanged)
	b.Subscribe("federation", func(_ context.Context, c bus.Change) { sent = append(sent, c.(Local).Typing) }, TopicLocal)

	if users, pos := s.Typing("!r"); len(users) != 0 || pos != 0 {
		t.Fatalf("empty room: %v %d", users, pos)
	}
	s.Set("!r", "@a:x", true, 30*time.Second)
	users, pos := s.Typing("!r")
	if !slices.Equal(users, []string{"@a:x"}) || pos != 11 || stream.Current() != 11 {
		t.Fatalf("after a start: %v at %d (stream %d)", users, pos, stream.Current())
	}
	// Typing again only extends the timeout: no new position, no wake-up,
	// but other servers hear of it again.
	s.Set("!r", "@a:x", true, 30*time.Second)
	if _, p := s.Typing("!r"); p != 11 || len(woken) != 1 || len(sent) != 2 {
		t.Fatalf("repeat: pos %d, woken %v, sent %v", p, woken, sent)
	}
	s.SetRemote("!r", "@b:y", true)
	if users, _ := s.Typing("!r"); !slices.Equal(users, []string{"@a:x", "@b:y"}) || len(sent) != 2 {
		t.Fatalf("remote: %v, sent %v", users, sent)
	}
	// Timeouts: a's 30 s pass, b's 60 s do not.
	clock = clock.Add(31 * time.Second)
	s.expire()
	if users, p := s.Typing("!r"); !slices.Equal(users, []string{"@b:y"}) || p <= 12 {
		t.Fatalf("after a's timeout: %v at %d", users, p)
	}
	s.SetRemote("!r", "@b:y", false)
	if users, _ := s.Typing("!r"); len(users) != 0 {
		t.Fatalf("after b stops: %v", users)
	}
	// A stop of someone not typing changes nothing.
	before := stream.Current()
	s.Set("!r", "@c:x", false, 0)
	if stream.Current() != before || sent[len(sent)-1] != true {
		t.Fatalf("a stop without a start moved the stream or was sent: %d -> %d, %v", before, stream.Current(), sent)
	}
	// Timeouts are capped.
	s.Set("!r", "@a:x", true, time.Hour)
	clock = clock.Add(MaxTimeout + time.Second)
	s.expire()
	if users, _ := s.Typing("!r"); len(users) != 0 {
		t.Fatalf("a timeout over the cap held: %v", users)
	}
	// An empty room is forgotten after a while.
	clock = clock.Add(forgetAfter + time.Second)
	s.expire()
	if _, p := s.Typing("!r"); p != 0 {
		t.Fatal("an idle room was kept")
	}
}
