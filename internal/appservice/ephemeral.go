package appservice

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/keys"
	"github.com/myelin-chat/myelin/internal/presence"
	"github.com/myelin-chat/myelin/internal/receipts"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/typing"
)

// streamEphemeral names, in appservice_stream_positions, the position
// up to which a service has been sent receipts, presence and device
// list changes.
const streamEphemeral = "ephemeral"

// ephemeralBatch bounds the receipts read per transaction and the
// to-device messages read per device.
const ephemeralBatch = 100

// EphemeralStore is what the ephemeral sender reads and records.
type EphemeralStore interface {
	interestStore
	AppServiceStreamPosition(ctx context.Context, asID, stream string) (int64, bool, error)
	SetAppServiceStreamPosition(ctx context.Context, asID, stream string, position int64) error
	ReceiptsBetween(ctx context.Context, after, upto int64, limit int) ([]store.Receipt, error)
	PresenceChangedUsers(ctx context.Context, after, upto int64) ([]string, error)
	DeviceListChangedUsers(ctx context.Context, after, upto int64) ([]string, error)
	UsersSharingRooms(ctx context.Context, userID string) ([]string, error)
	ToDeviceRecipients(ctx context.Context) ([]store.ToDeviceRecipient, error)
	ListDevices(ctx context.Context, localpart string) ([]store.Device, error)
}

// Typing is who is typing in a room (typing.Service).
type Typing interface {
	Typing(roomID string) ([]string, int64)
}

// Presence is users' current presence (presence.Service).
type Presence interface {
	Current(ctx context.Context, userIDs []string) ([]presence.Event, error)
}

// Keys is the encryption service's side of MSC2409's to-device part and
// MSC3202 (keys.Service).
type Keys interface {
	ToDeviceMessages(ctx context.Context, userID, deviceID string, since int64, limit int) ([]keys.Message, int64, error)
	Ack(ctx context.Context, userID, deviceID string, upTo int64) error
	OneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error)
	UnusedFallbackKeyTypes(ctx context.Context, userID, deviceID string) ([]string, error)
}

// Stream is the event stream's current position.
type Stream interface {
	Current() int64
}

// EphemeralOptions configure the ephemeral sender.
type EphemeralOptions struct {
	Registry *Registry
	Store    EphemeralStore
	Stream   Stream
	Typing   Typing
	Presence Presence
	Keys     Keys
	Client   *Client
	Bus      bus.Bus
	Log      *slog.Logger
	// MaxRetry caps the back-off between attempts (default one minute).
	MaxRetry time.Duration
}

// Ephemeral sends application services what is not a room event: with
// receive_ephemeral (spec v1.13, MSC2409) typing, receipts and presence
// under "ephemeral", and to-device messages for their users' devices;
// with org.matrix.msc3202 the device list changes, one-time key counts
// and unused fallback key types that an encrypted bridge's Olm machine
// needs (what /sync gives a client). It runs beside the event Sender,
// one goroutine per service, so that neither waits for the other: room
// events never wait for ephemeral data (Synapse sends them apart too).
//
// Receipts, presence and device lists are read by stream range from a
// per-service position stored once the service took them (a restart or
// an outage repeats, never loses, them); to-device messages stay in the
// device's inbox until the service acknowledged them. Typing lives in
// memory only, as for clients.
type Ephemeral struct {
	o       EphemeralOptions
	workers []*ephemeralWorker
	byID    map[string]*ephemeralWorker
	// txnPrefix keeps transaction IDs of this process apart from the
	// event sender's (stream positions) and from an earlier process's:
	// mautrix-go drops a transaction whose ID it has seen.
	txnPrefix string
	// firstPos is where a service seen for the first time starts, taken
	// when the server was built (see Sender.firstPos).
	firstPos int64
}

// ephemeralWorker is one service's state, fed by bus listeners.
type ephemeralWorker struct {
	reg  *Registration
	wake chan struct{}

	mu sync.Mutex
	// typingRooms are rooms whose typing list changed.
	typingRooms map[string]bool
	// keyUsers are the service's users with news for their devices:
	// to-device messages, claimed or uploaded keys.
	keyUsers map[string]bool
	// scanInboxes asks for a look at every device inbox (start-up and
	// every tick), for messages that arrived while the service was down.
	scanInboxes bool
}

// takesToDevice says whether the service is sent its devices' to-device
// messages, which then leave the devices' inboxes: only with both
// receive_ephemeral (which mautrix-go needs to read them) and
// org.matrix.msc3202, which mautrix bridges set exactly when their
// encryption runs from transactions ("appservice mode"). A service with
// receive_ephemeral alone, whose bot device runs /sync (mautrix's
// default mode), keeps getting them there: taking them from the inbox
// would starve that sync of its room keys.
func (r *Registration) takesToDevice() bool { return r.ReceiveEphemeral && r.MSC3202 }

// wantsEphemeral says whether the service asked for any of this.
func (r *Registration) wantsEphemeral() bool { return r.URL != "" && (r.ReceiveEphemeral || r.MSC3202) }

// NewEphemeral makes the ephemeral sender and subscribes it to the bus;
// it sends nothing until Run.
func NewEphemeral(o EphemeralOptions) *Ephemeral {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.MaxRetry <= 0 {
		o.MaxRetry = time.Minute
	}
	e := &Ephemeral{o: o, byID: map[string]*ephemeralWorker{}, txnPrefix: "e" + strconv.FormatInt(time.Now().UnixNano(), 36) + "."}
	if o.Stream != nil {
		e.firstPos = o.Stream.Current()
	}
	for _, reg := range o.Registry.All() {
		if !reg.wantsEphemeral() {
			continue
		}
		w := &ephemeralWorker{reg: reg, wake: make(chan struct{}, 1), typingRooms: map[string]bool{}, keyUsers: map[string]bool{}, scanInboxes: true}
		e.workers = append(e.workers, w)
		e.byID[reg.ID] = w
	}
	if len(e.workers) > 0 && o.Bus != nil {
		o.Bus.Subscribe("appservice-ephemeral", e.heard, typing.TopicChanged, receipts.TopicStored, presence.TopicChanged, keys.TopicChanged, keys.TopicKeysUploaded)
	}
	return e
}

// heard runs on the publisher's goroutine: it only notes and wakes.
func (e *Ephemeral) heard(_ context.Context, c bus.Change) {
	for _, w := range e.workers {
		switch c := c.(type) {
		case typing.Changed:
			if !w.reg.ReceiveEphemeral {
				continue
			}
			w.mu.Lock()
			w.typingRooms[c.RoomID] = true
			w.mu.Unlock()
		case receipts.Stored, presence.Changed:
			if !w.reg.ReceiveEphemeral {
				continue
			}
		case keys.KeysUploaded:
			if !w.reg.MSC3202 || !w.reg.OwnsUser(c.UserID, e.o.Registry.ServerName) {
				continue
			}
			w.mu.Lock()
			w.keyUsers[c.UserID] = true
			w.mu.Unlock()
		case keys.Changed:
			// Device list changes of users sharing a room with the
			// service's users wake them too: the range read finds those.
			if w.reg.OwnsUser(c.UserID, e.o.Registry.ServerName) {
				w.mu.Lock()
				w.keyUsers[c.UserID] = true
				w.mu.Unlock()
			} else if !w.reg.MSC3202 {
				continue
			}
		}
		w.poke()
	}
}

func (w *ephemeralWorker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run sends until ctx ends, returning once every service's worker has
// stopped.
func (e *Ephemeral) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, w := range e.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.serve(ctx, w)
		}()
	}
	// Returns with ctx, as every worker does, even with no service.
	<-ctx.Done()
	wg.Wait()
	return nil
}

func (e *Ephemeral) serve(ctx context.Context, w *ephemeralWorker) {
	log := e.o.Log.With("appservice", w.reg.ID)
	t := time.NewTicker(tick)
	defer t.Stop()
	pos, ok := int64(0), false
	var seq int64
	for ctx.Err() == nil {
		if !ok {
			pos, ok = e.start(ctx, w.reg, log)
		}
		if ok {
			var more bool
			seq++
			pos, more = e.deliver(ctx, w, pos, e.txnPrefix+strconv.FormatInt(seq, 10), log)
			if more {
				continue
			}
		}
		select {
		case <-ctx.Done():
		case <-w.wake:
		case <-t.C:
			w.mu.Lock()
			w.scanInboxes = true
			w.mu.Unlock()
		}
	}
}

// start loads the position; a service seen for the first time starts at
// the stream's end, as for events.
func (e *Ephemeral) start(ctx context.Context, reg *Registration, log *slog.Logger) (int64, bool) {
	pos, found, err := e.o.Store.AppServiceStreamPosition(ctx, reg.ID, streamEphemeral)
	if err == nil && !found {
		pos = e.firstPos
		err = e.o.Store.SetAppServiceStreamPosition(ctx, reg.ID, streamEphemeral, pos)
	}
	if err != nil {
		log.Error("appservice ephemeral: loading the position", "err", err)
		return 0, false
	}
	return pos, true
}

// ephemeralTxn is a transaction of ephemeral data: events is required
// by the spec and empty. Each part goes under its stable name and the
// unstable one of its MSC, which mautrix-go and matrix-bot-sdk read
// (Synapse sends the unstable names; mautrix-go prefers the stable).
type ephemeralTxn struct {
	Events            []json.RawMessage `json:"events"`
	Ephemeral         []json.RawMessage `json:"ephemeral,omitempty"`
	UnstableEphemeral []json.RawMessage `json:"de.sorunome.msc2409.ephemeral,omitempty"`
	ToDevice          []json.RawMessage `json:"to_device,omitempty"`
	UnstableToDevice  []json.RawMessage `json:"de.sorunome.msc2409.to_device,omitempty"`

	DeviceLists                  *deviceLists `json:"device_lists,omitempty"`
	UnstableDeviceLists          *deviceLists `json:"org.matrix.msc3202.device_lists,omitempty"`
	OTKCounts                    otkCounts    `json:"device_one_time_keys_count,omitempty"`
	UnstableOTKCounts            otkCounts    `json:"org.matrix.msc3202.device_one_time_keys_count,omitempty"`
	UnstableOTKCountsMSCSpelling otkCounts    `json:"org.matrix.msc3202.device_one_time_key_counts,omitempty"`
	Fallback                     fallbackKeys `json:"device_unused_fallback_key_types,omitempty"`
	UnstableFallback             fallbackKeys `json:"org.matrix.msc3202.device_unused_fallback_key_types,omitempty"`
}

type deviceLists struct {
	Changed []string `json:"changed"`
	Left    []string `json:"left"`
}

// otkCounts is user -> device -> algorithm -> count.
type otkCounts map[string]map[string]map[string]int

// fallbackKeys is user -> device -> algorithms.
type fallbackKeys map[string]map[string][]string

func (t *ephemeralTxn) empty() bool {
	return len(t.Ephemeral) == 0 && len(t.ToDevice) == 0 && t.DeviceLists == nil && len(t.OTKCounts) == 0 && len(t.Fallback) == 0
}

// fillUnstable copies each part under its unstable name.
func (t *ephemeralTxn) fillUnstable() {
	t.Events = []json.RawMessage{}
	t.UnstableEphemeral, t.UnstableToDevice, t.UnstableDeviceLists = t.Ephemeral, t.ToDevice, t.DeviceLists
	t.UnstableOTKCounts, t.UnstableOTKCountsMSCSpelling, t.UnstableFallback = t.OTKCounts, t.OTKCounts, t.Fallback
}

// acked is a device inbox position to delete up to once the service took
// the transaction.
type acked struct {
	userID, deviceID string
	upTo             int64
}

// deliver gathers what changed after pos and sends it, retrying until
// the service takes it; it returns the new position and whether more
// may be waiting.
func (e *Ephemeral) deliver(ctx context.Context, w *ephemeralWorker, pos int64, txnID string, log *slog.Logger) (int64, bool) {
	w.mu.Lock()
	rooms, users, scan := w.typingRooms, w.keyUsers, w.scanInboxes
	w.typingRooms, w.keyUsers, w.scanInboxes = map[string]bool{}, map[string]bool{}, false
	w.mu.Unlock()
	requeue := func() {
		w.mu.Lock()
		for r := range rooms {
			w.typingRooms[r] = true
		}
		for u := range users {
			w.keyUsers[u] = true
		}
		w.scanInboxes = w.scanInboxes || scan
		w.mu.Unlock()
	}

	g := gather{e: e, reg: w.reg, interest: newInterest(e.o.Store, e.o.Registry, w.reg)}
	upto, more, err := g.collect(ctx, pos, e.o.Stream.Current(), rooms, users, scan)
	if err != nil {
		log.Error("appservice ephemeral: gathering", "err", err)
		requeue()
		return pos, false
	}
	if g.txn.empty() {
		if upto > pos && upto-pos >= batch {
			// Nothing for this service in a long range: record it so a
			// restart does not read it again.
			if err := e.o.Store.SetAppServiceStreamPosition(ctx, w.reg.ID, streamEphemeral, upto); err != nil {
				log.Error("appservice ephemeral: recording the position", "err", err)
			}
		}
		return upto, more
	}
	g.txn.fillUnstable()
	backoff := firstRetry
	for {
		_, err := e.o.Client.do(ctx, w.reg, "PUT", "/_matrix/app/v1/transactions/"+txnID, &g.txn)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			requeue()
			return pos, false
		}
		log.Warn("appservice ephemeral: transaction failed, retrying", "txn_id", txnID, "retry_in", backoff, "err", err)
		select {
		case <-ctx.Done():
			requeue()
			return pos, false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, e.o.MaxRetry)
	}
	for _, a := range g.acks {
		if err := e.o.Keys.Ack(ctx, a.userID, a.deviceID, a.upTo); err != nil {
			// Not deleted: sent again later, which Olm tolerates
			// (a replayed message fails to decrypt and is dropped).
			log.Error("appservice ephemeral: acknowledging to-device messages", "err", err)
		}
	}
	if upto > pos {
		if err := e.o.Store.SetAppServiceStreamPosition(ctx, w.reg.ID, streamEphemeral, upto); err != nil {
			log.Error("appservice ephemeral: recording the position", "err", err)
		}
	}
	if len(g.fullInboxes) > 0 {
		w.mu.Lock()
		for _, u := range g.fullInboxes {
			w.keyUsers[u] = true
		}
		w.mu.Unlock()
		more = true
	}
	return upto, more
}

// gather builds one transaction.
type gather struct {
	e        *Ephemeral
	reg      *Registration
	interest *interest
	txn      ephemeralTxn
	acks     []acked
	// fullInboxes are the users with a device whose inbox held a full
	// batch: more may wait.
	fullInboxes []string
}

// collect fills the transaction with what changed in (pos, cur]; upto is
// how far it got (less than cur when the receipts filled a batch).
func (g *gather) collect(ctx context.Context, pos, cur int64, rooms, users map[string]bool, scan bool) (upto int64, more bool, err error) {
	upto = cur
	if g.reg.ReceiveEphemeral {
		if err := g.typing(ctx, rooms); err != nil {
			return pos, false, err
		}
		if upto, more, err = g.receipts(ctx, pos, cur); err != nil {
			return pos, false, err
		}
		if err := g.presence(ctx, pos, upto); err != nil {
			return pos, false, err
		}
	}
	if g.reg.takesToDevice() {
		toDeviceUsers, err := g.toDevice(ctx, users, scan)
		if err != nil {
			return pos, false, err
		}
		for u := range toDeviceUsers {
			users[u] = true
		}
	}
	if g.reg.MSC3202 {
		if err := g.deviceLists(ctx, pos, upto); err != nil {
			return pos, false, err
		}
		if err := g.keyCounts(ctx, users); err != nil {
			return pos, false, err
		}
	}
	return upto, more, nil
}

func (g *gather) add(ev any) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	g.txn.Ephemeral = append(g.txn.Ephemeral, b)
	return nil
}

// typing adds an m.typing, with room_id as the spec requires, for each
// room of interest whose list changed.
func (g *gather) typing(ctx context.Context, rooms map[string]bool) error {
	for roomID := range rooms {
		ok, err := g.interest.room(ctx, roomID)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		users, _ := g.e.o.Typing.Typing(roomID)
		if err := g.add(map[string]any{"type": "m.typing", "room_id": roomID, "content": map[string]any{"user_ids": users}}); err != nil {
			return err
		}
	}
	return nil
}

// receipts adds the public receipts stored in (pos, cur] in rooms of
// interest, one m.receipt per room; private ones (m.read.private) are
// their user's alone, as Synapse leaves them out of transactions too.
func (g *gather) receipts(ctx context.Context, pos, cur int64) (int64, bool, error) {
	if cur <= pos {
		return cur, false, nil
	}
	rs, err := g.e.o.Store.ReceiptsBetween(ctx, pos, cur, ephemeralBatch)
	if err != nil {
		return pos, false, err
	}
	upto, more := cur, false
	if len(rs) == ephemeralBatch {
		upto, more = rs[len(rs)-1].StreamPos, true
	}
	byRoom := map[string]map[string]map[string]map[string]any{}
	var order []string
	for _, r := range rs {
		if r.Type != receipts.Read {
			continue
		}
		ok, err := g.interest.room(ctx, r.RoomID)
		if err != nil {
			return pos, false, err
		}
		if !ok {
			continue
		}
		content := byRoom[r.RoomID]
		if content == nil {
			content = map[string]map[string]map[string]any{}
			byRoom[r.RoomID] = content
			order = append(order, r.RoomID)
		}
		if content[r.EventID] == nil {
			content[r.EventID] = map[string]map[string]any{r.Type: {}}
		}
		data := map[string]any{"ts": r.TS}
		if r.ThreadID != "" {
			data["thread_id"] = r.ThreadID
		}
		content[r.EventID][r.Type][r.UserID] = data
	}
	for _, roomID := range order {
		if err := g.add(map[string]any{"type": "m.receipt", "room_id": roomID, "content": byRoom[roomID]}); err != nil {
			return pos, false, err
		}
	}
	return upto, more, nil
}

// presence adds the m.presence of users whose presence changed in
// (pos, upto] and whom the service cares about (Synapse's
// is_interested_in_presence: its users and those sharing a room with
// them), as it is now.
func (g *gather) presence(ctx context.Context, pos, upto int64) error {
	if upto <= pos || g.e.o.Presence == nil {
		return nil
	}
	changed, err := g.e.o.Store.PresenceChangedUsers(ctx, pos, upto)
	if err != nil {
		return err
	}
	var users []string
	for _, u := range changed {
		ok, err := g.interest.user(ctx, u)
		if err != nil {
			return err
		}
		if ok {
			users = append(users, u)
		}
	}
	if len(users) == 0 {
		return nil
	}
	evs, err := g.e.o.Presence.Current(ctx, users)
	if err != nil {
		return err
	}
	for _, ev := range evs {
		if err := g.add(ev); err != nil {
			return err
		}
	}
	return nil
}
