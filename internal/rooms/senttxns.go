package rooms

import (
	"context"
	"hash/maphash"
	"sync"

	"github.com/myelin-chat/myelin/internal/cache"
)

// Bounds of sentTxns. A device is read from the store once per process
// (or after it was forgotten) when it has at most txnLoadLimit stored
// transactions; one with more, or that sends more than txnDeviceLimit in
// this process, is looked up in the store on every send, as before. The
// whole record holds at most txnTotalLimit hashes (about 20 bytes each
// in a Go map) and txnDeviceCount devices.
const (
	txnLoadLimit   = 4096
	txnDeviceLimit = 16384
	txnTotalLimit  = 1 << 16
	txnDeviceCount = 4096
	// txnIdleTrims quiet checks (10 s each) without a send forget a
	// device: reading it back costs a query of up to txnLoadLimit rows,
	// which a user pausing between messages should not pay every time.
	txnIdleTrims = 3
)

// sentTxns remembers which transaction IDs each device sent events with,
// so that a new one (nearly every /send) is known to be new without the
// store query that otherwise runs on every send. Only a hash of (room,
// scope, ID) is kept: a device whose record is complete and lacks the
// hash surely never sent the transaction; a hash it has, from this or an
// earlier request, is looked up in the store as before, which also
// settles a collision. A retry therefore still returns the first event
// after a restart or after the record forgot the device.
//
// A record is complete when it was filled from the store and every write
// with a transaction of the device since was added to it before being
// queued (begin). Entries with writes not yet settled are never forgotten,
// so a record created afresh can only miss writes that are committed, and
// its load from the store sees those. This holds while one process writes
// a device's events, as the room engine (whose room heads live in memory)
// already requires.
type sentTxns struct {
	seed    maphash.Seed
	mu      sync.Mutex
	devices map[txnDevice]*deviceTxns
	hashes  int
}

type txnDevice struct{ localpart, device string }

type deviceTxns struct {
	// complete: sent holds every transaction of the device in the store.
	complete bool
	// tooMany: the device has more transactions than the record keeps;
	// always ask the store.
	tooMany bool
	sent    map[uint64]struct{}
	// writing counts the device's writes begun and not settled.
	writing int
	// used: looked up since the last sweep (forget) or TrimIdle.
	used bool
	// idleTrims counts the TrimIdle calls since the device was last
	// looked up.
	idleTrims int
}

func newSentTxns() *sentTxns {
	return &sentTxns{seed: maphash.MakeSeed(), devices: map[txnDevice]*deviceTxns{}}
}

func (s *sentTxns) hash(roomID, scope, id string) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	// The lengths keep ("ab","c") and ("a","bc") apart.
	for _, part := range [...]string{roomID, scope, id} {
		var n [4]byte
		l := len(part)
		n[0], n[1], n[2], n[3] = byte(l), byte(l>>8), byte(l>>16), byte(l>>24)
		h.Write(n[:])
		h.WriteString(part)
	}
	return h.Sum64()
}

// surelyNew reports whether the device surely never sent txn in the
// room; false means the store must be asked. The first question about a
// device reads its transactions from st.
func (s *sentTxns) surelyNew(ctx context.Context, st Store, roomID string, txn *Txn) bool {
	key := txnDevice{txn.Localpart, txn.Device}
	h := s.hash(roomID, txn.Scope, txn.ID)
	s.mu.Lock()
	d := s.devices[key]
	if d == nil {
		d = s.addLocked(key)
	}
	d.used = true
	if d.complete || d.tooMany {
		_, seen := d.sent[h]
		complete := d.complete
		s.mu.Unlock()
		return complete && !seen
	}
	s.mu.Unlock()
	// Read after d was entered: a write begun before then has its hash
	// in d, or had settled (d's predecessor was only forgotten with no
	// write of the device in flight), and so is visible to this read.
	stored, err := st.TxnsOfDevice(ctx, txn.Localpart, txn.Device, txnLoadLimit+1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || s.devices[key] != d || d.tooMany {
		return false
	}
	if len(stored) > txnLoadLimit {
		s.tooManyLocked(d)
		return false
	}
	defer s.trimLocked()
	for _, t := range stored {
		s.addHashLocked(d, s.hash(t.RoomID, t.Scope, t.ID))
	}
	if d.tooMany {
		return false
	}
	d.complete = true
	_, seen := d.sent[h]
	return !seen
}

// begin notes a write with txn before it is queued; end, once it settled
// (committed or failed: a failed one's hash stays, costing at most a
// store lookup).
func (s *sentTxns) begin(roomID string, txn *Txn) {
	key := txnDevice{txn.Localpart, txn.Device}
	h := s.hash(roomID, txn.Scope, txn.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.devices[key]
	if d == nil {
		d = s.addLocked(key)
	}
	d.writing++
	s.addHashLocked(d, h)
	s.trimLocked()
}

func (s *sentTxns) end(txn *Txn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.devices[txnDevice{txn.Localpart, txn.Device}]; d != nil {
		d.writing--
	}
}

func (s *sentTxns) addLocked(key txnDevice) *deviceTxns {
	if len(s.devices) >= txnDeviceCount {
		s.forgetLocked()
	}
	d := &deviceTxns{sent: map[uint64]struct{}{}}
	s.devices[key] = d
	return d
}

func (s *sentTxns) addHashLocked(d *deviceTxns, h uint64) {
	if d.tooMany {
		return
	}
	if _, ok := d.sent[h]; ok {
		return
	}
	if len(d.sent) >= txnDeviceLimit {
		s.tooManyLocked(d)
		return
	}
	d.sent[h] = struct{}{}
	s.hashes++
}

func (s *sentTxns) tooManyLocked(d *deviceTxns) {
	s.hashes -= len(d.sent)
	d.sent, d.complete, d.tooMany = nil, false, true
}

// trimLocked sweeps the record when it holds too many hashes; it runs
// after a caller's last use of its entry, which a sweep may drop.
func (s *sentTxns) trimLocked() {
	if s.hashes > txnTotalLimit {
		s.forgetLocked()
	}
}

// TrimIdle forgets the devices not looked up in the last
// txnIdleTrims calls and without a write in flight
// (cache.TrimWhenIdle). After a burst of sends their hashes (tens of KB
// per busy device, in maps that do not shrink) would otherwise stay for
// the process's life; a device that sends again is read from the store
// once, as after a restart.
func (s *sentTxns) TrimIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, d := range s.devices {
		d.idleTrims++
		if d.used {
			d.idleTrims, d.used = 0, false
		}
		if d.writing == 0 && d.idleTrims >= txnIdleTrims {
			s.hashes -= len(d.sent)
			delete(s.devices, k)
			n++
		}
	}
	if n > 0 {
		// The map of devices does not shrink either (nor does a
		// maps.Clone of it).
		s.devices = cache.Resized(s.devices)
	}
	return n
}

// forgetLocked drops the devices not looked up since the last sweep, or
// if that frees too little, every device without a write in flight.
// A forgotten device is read from the store again when next asked about.
func (s *sentTxns) forgetLocked() {
	for _, all := range []bool{false, true} {
		for k, d := range s.devices {
			if d.writing == 0 && (all || !d.used) {
				s.hashes -= len(d.sent)
				delete(s.devices, k)
			}
			d.used = false
		}
		if s.hashes < txnTotalLimit/2 && len(s.devices) < txnDeviceCount/2 {
			return
		}
	}
}
