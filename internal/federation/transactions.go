package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"

	"github.com/myelin-chat/myelin/internal/federation/remote"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/outbound"
	"github.com/myelin-chat/myelin/internal/periodic"
	"github.com/myelin-chat/myelin/internal/rooms"
)

// inbound is the state of the /send endpoint: the EDU handlers other
// packages register and a lock per origin.
type inbound struct {
	mu          sync.Mutex
	eduHandlers map[string]EDUHandler
	// origins serialises the transactions of each origin, so that a
	// transaction retried while the first attempt is still running waits
	// for its answer instead of being processed twice.
	origins map[string]*originLock
	// failed counts the attempts at a transaction that failed to decide
	// on some PDU (see sendTransaction), by origin and transaction ID.
	failed map[txnKey]int
}

type txnKey struct{ origin, txnID string }

// maxTxnAttempts bounds how often a transaction is refused with 500 for
// a failure to decide on one of its PDUs: should such a failure repeat
// on every attempt (one event this server cannot check, whatever the
// reason), the transaction is answered with that PDU's error after this
// many attempts, so that one event never stalls an origin's queue.
const maxTxnAttempts = 5

// maxFailedTxns bounds the failed map: past it, counting starts over.
const maxFailedTxns = 10000

type originLock struct {
	mu   sync.Mutex
	refs int
}

// EDUHandler handles one type of ephemeral event from another server.
type EDUHandler func(ctx context.Context, origin string, content json.RawMessage)

// handleEDU registers the handler for an EDU type (typing, receipts,
// presence, device lists, to-device messages); EDUs of types without a
// handler are ignored, as the spec lets a server do.
func (a *API) handleEDU(eduType string, h EDUHandler) {
	a.in.mu.Lock()
	defer a.in.mu.Unlock()
	if a.in.eduHandlers == nil {
		a.in.eduHandlers = map[string]EDUHandler{}
	}
	a.in.eduHandlers[eduType] = h
}

func (a *API) eduHandler(eduType string) EDUHandler {
	a.in.mu.Lock()
	defer a.in.mu.Unlock()
	return a.in.eduHandlers[eduType]
}

func (a *API) lockOrigin(origin string) func() {
	a.in.mu.Lock()
	if a.in.origins == nil {
		a.in.origins = map[string]*originLock{}
	}
	l, ok := a.in.origins[origin]
	if !ok {
		l = &originLock{}
		a.in.origins[origin] = l
	}
	l.refs++
	a.in.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		a.in.mu.Lock()
		defer a.in.mu.Unlock()
		if l.refs--; l.refs == 0 {
			delete(a.in.origins, origin)
		}
	}
}

// inboundTxnRetention is how long a transaction's answer is kept for a
// retry; Synapse keeps them a day.
const inboundTxnRetention = 24 * time.Hour

// PruneInboundTxns forgets, hourly until ctx ends, the answers to
// transactions received longer ago than a sender would retry them.
func PruneInboundTxns(ctx context.Context, st interface {
	PruneInboundTxns(ctx context.Context, ts int64) error
}, log *slog.Logger) error {
	periodic.NowAndEvery(ctx, time.Hour, func() {
		if err := st.PruneInboundTxns(ctx, time.Now().Add(-inboundTxnRetention).UnixMilli()); err != nil && ctx.Err() == nil {
			log.Warn("pruning received federation transactions", "err", err)
		}
	})
	return nil
}

func (a *API) registerTransactions(rt *httpapi.Router) {
	rt.Add(httpapi.Route{Method: http.MethodPut, Path: "/_matrix/federation/v1/send/{txnId}", Handler: a.signed(a.sendTransaction)})
}

// txnBody is an incoming transaction; origin and origin_server_ts are
// not needed: the X-Matrix signature names the origin.
type txnBody struct {
	PDUs []json.RawMessage       `json:"pdus"`
	EDUs []gomatrixserverlib.EDU `json:"edus"`
}

// sendTransaction is PUT /_matrix/federation/v1/send/{txnId}.
func (a *API) sendTransaction(r *Request) (any, error) {
	ctx, txnID := r.Context(), r.PathValue("txnId")
	var body txnBody
	if err := httpapi.DecodeObject(r.Content, &body); err != nil {
		return nil, err
	}
	if len(body.PDUs) > remote.MaxTxnPDUs || len(body.EDUs) > remote.MaxTxnEDUs {
		// Synapse answers 400 too; the spec only states the limits.
		return nil, mxerr.BadJSON("A transaction holds at most %d PDUs and %d EDUs", remote.MaxTxnPDUs, remote.MaxTxnEDUs)
	}
	if a.d.Sender != nil {
		a.d.Sender.RemoteUp(ctx, r.Origin)
	}
	unlock := a.lockOrigin(r.Origin)
	defer unlock()
	// A transaction is processed once per origin and ID; a retry gets the
	// first answer (server-server spec: the sender retries until 200).
	if prev, found, err := a.d.Store.InboundTxn(ctx, r.Origin, txnID); err != nil {
		return nil, err
	} else if found {
		return json.RawMessage(prev), nil
	}
	results, undecided := a.receivePDUs(ctx, r.Origin, body.PDUs)
	if undecided != nil && a.retryTxn(r.Origin, txnID) {
		// A PDU could not be checked (a database error, a cancelled
		// context): it is not stored, and the transaction is not recorded,
		// so that the origin retries it (server-server spec: until it
		// gets a 200) and the PDU is checked again. EDUs are applied on
		// the retry too; each kind is idempotent or deduplicated.
		a.d.Log.Warn("federation: transaction to be retried", "origin", r.Origin, "txn_id", txnID, "err", undecided)
		return nil, mxerr.Unknown("A PDU of the transaction could not be processed; retry later")
	}
	resp := fclient.RespSend{PDUs: results}
	a.receiveEDUs(ctx, r.Origin, body.EDUs)
	if ctx.Err() != nil {
		// The sender gave up on this attempt; what was received stays
		// received, but the answer is not the full one and is not kept.
		return nil, ctx.Err()
	}
	raw, err := json.Marshal(resp)
	if err != nil {
		return nil, err
	}
	if err := a.d.Store.RecordInboundTxn(ctx, r.Origin, txnID, raw, a.now().UnixMilli()); err != nil {
		return nil, err
	}
	a.forgetTxnFailures(r.Origin, txnID)
	return json.RawMessage(raw), nil
}

// retryTxn counts a failed attempt at a transaction and reports whether
// the origin should retry it (fewer than maxTxnAttempts so far).
func (a *API) retryTxn(origin, txnID string) bool {
	a.in.mu.Lock()
	defer a.in.mu.Unlock()
	if a.in.failed == nil || len(a.in.failed) >= maxFailedTxns {
		a.in.failed = map[txnKey]int{}
	}
	k := txnKey{origin, txnID}
	a.in.failed[k]++
	return a.in.failed[k] < maxTxnAttempts
}

func (a *API) forgetTxnFailures(origin, txnID string) {
	a.in.mu.Lock()
	defer a.in.mu.Unlock()
	delete(a.in.failed, txnKey{origin, txnID})
}

// receivePDUs processes a transaction's PDUs: rooms independently and
// concurrently, each room's PDUs in transaction order. undecided is the
// error of a PDU that could not be checked (see decided), nil if none.
func (a *API) receivePDUs(ctx context.Context, origin string, raws []json.RawMessage) (results map[string]fclient.PDUResult, undecided error) {
	results = map[string]fclient.PDUResult{}
	byRoom := map[string][]json.RawMessage{}
	var order []string
	for _, raw := range raws {
		var head struct {
			RoomID string `json:"room_id"`
		}
		if json.Unmarshal(raw, &head) != nil || head.RoomID == "" {
			a.d.Log.Info("federation: dropping a PDU without room_id", "origin", origin)
			continue
		}
		if _, ok := byRoom[head.RoomID]; !ok {
			order = append(order, head.RoomID)
		}
		byRoom[head.RoomID] = append(byRoom[head.RoomID], raw)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, roomID := range order {
		wg.Go(func() {
			for _, raw := range byRoom[roomID] {
				id, err := a.receivePDU(ctx, origin, roomID, raw)
				if id == "" {
					continue
				}
				res := fclient.PDUResult{}
				if err != nil {
					a.d.Log.Info("federation: refused a PDU", "origin", origin, "event_id", id, "err", err)
					res.Error = pduReason(err)
				}
				mu.Lock()
				results[id] = res
				if err != nil && !decided(err) && undecided == nil {
					undecided = fmt.Errorf("event %s: %w", id, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return results, undecided
}

// refusedPDU is this package's decision against a PDU: it does not parse,
// its signatures do not verify, it names an unknown room or lacks events
// its origin did not supply. The same PDU gets the same answer again.
type refusedPDU struct{ err error }

func (e *refusedPDU) Error() string { return e.err.Error() }
func (e *refusedPDU) Unwrap() error { return e.err }

// fetchVerdict is the error of a PDU whose missing events or state could
// not be fetched: a refusal when the origin failed to supply them (a
// remote.BadAnswer), else this server's own failure, which leaves the
// PDU undecided and its transaction to be retried.
func fetchVerdict(err error) error {
	var bad *remote.BadAnswer
	if errors.As(err, &bad) {
		return &refusedPDU{err}
	}
	return err
}

// decided reports whether a PDU's error is a decision about it (this
// package's or the room engine's), rather than a failure to decide (a
// database error, a cancelled context) after which it may be retried.
func decided(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var r *refusedPDU
	return errors.As(err, &r) || rooms.Decided(err)
}

// receivePDU runs the checks on receipt of a PDU (server-server spec
// "Checks performed on receipt of a PDU") that are this package's: a
// valid event of the room's version (else dropped), correct signatures
// (else dropped), a correct content hash (else redacted, which parsing
// does), an origin and sender the room's server ACL admits; the room
// engine does the auth checks. It returns the event ID ("" when the PDU
// is too broken to have one) and why the event was refused.
func (a *API) receivePDU(ctx context.Context, origin, roomID string, raw json.RawMessage) (string, error) {
	v, err := a.d.Rooms.RoomVersion(ctx, roomID)
	if err != nil && rooms.Decided(err) && a.d.Remote != nil {
		if a.d.Remote.HoldForJoin(roomID, len(raw), func(ctx context.Context) { a.receiveHeld(ctx, origin, roomID, raw) }) {
			// A room this server is joining: received once the join is
			// stored (remote/joinhold.go). Its ID needs the room's
			// version, so it has no result in the answer, as an unknown
			// room's event has none.
			return "", nil
		}
		// No join in flight: unless one stored the room since it was
		// looked up, the room is unknown.
		v, err = a.d.Rooms.RoomVersion(ctx, roomID)
	}
	if err != nil {
		var head struct {
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal(raw, &head)
		if !rooms.Decided(err) {
			// The room's version could not be read: not a verdict.
			return head.EventID, err
		}
		if id, ok, err := a.receiveRescinded(ctx, origin, raw); ok {
			return id, err
		}
		// Without the room's version a v3+ event has no ID to answer for.
		return head.EventID, &refusedPDU{fmt.Errorf("room %s is not known to this server", roomID)}
	}
	pdu, err := a.verifyPDU(ctx, origin, v, raw)
	if err != nil {
		var head struct {
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal(raw, &head)
		if pdu != nil {
			head.EventID = pdu.EventID()
		}
		return head.EventID, err
	}
	if a.rescindsInvite(ctx, pdu) {
		_, err = a.d.Rooms.ReceiveRescinded(ctx, pdu)
		return pdu.EventID(), err
	}
	_, err = a.d.Rooms.Receive(ctx, pdu)
	var missing *rooms.ErrMissingEvents
	if errors.As(err, &missing) {
		// Only missing prev events make a gap; missing auth events alone
		// are fetched by receiveOrResolve.
		if len(missing.Prev) > 0 {
			if ferr := a.fetchMissing(ctx, origin, v, pdu); ferr != nil {
				a.d.Log.Info("federation: filling a gap with get_missing_events", "origin", origin, "event_id", pdu.EventID(), "err", ferr)
			}
		}
		_, err = a.receiveOrResolve(ctx, origin, v, pdu)
	}
	if errors.As(err, &missing) {
		return pdu.EventID(), &refusedPDU{fmt.Errorf("missing %d prev_events and %d auth_events that the origin did not supply", len(missing.Prev), len(missing.Auth))}
	}
	return pdu.EventID(), err
}

// receiveHeld receives an event held while its room was being joined
// (HoldForJoin). No one waits for its answer: a refusal is logged.
func (a *API) receiveHeld(ctx context.Context, origin, roomID string, raw json.RawMessage) {
	id, err := a.receivePDU(ctx, origin, roomID, raw)
	if err != nil {
		a.d.Log.Info("federation: refused a PDU held while joining its room", "origin", origin, "event_id", id, "err", err)
	}
}

// receiveOrResolve receives an event and, when some of its prev events
// are still unknown, lets the origin's state at those stand in for them
// (Synapse does the same for a gap get_missing_events did not fill).
// Auth events it lacks are fetched from the origin (/event_auth) before
// its auth check, as Synapse's _update_auth_events_for_auth does, rather
// than the event being refused for them.
func (a *API) receiveOrResolve(ctx context.Context, origin string, v gomatrixserverlib.IRoomVersion, pdu gomatrixserverlib.PDU) (*rooms.Event, error) {
	ev, err := a.d.Rooms.Receive(ctx, pdu)
	var missing *rooms.ErrMissingEvents
	if !errors.As(err, &missing) {
		return ev, err
	}
	var chain []gomatrixserverlib.PDU
	if len(missing.Auth) > 0 {
		if chain, err = a.d.Remote.AuthChain(ctx, origin, v, pdu); err != nil {
			return nil, fetchVerdict(err)
		}
	}
	if len(missing.Prev) > 0 {
		return a.receiveWithRemoteState(ctx, origin, v, pdu, missing.Prev, chain)
	}
	return a.d.Rooms.ReceiveWithState(ctx, pdu, nil, chain)
}

// verifyPDU parses an event of a room version and checks its signatures
// and that the room's server ACL admits both the server that sent it to
// us and its sender's server. A content hash mismatch redacts the event
// (NewEventFromUntrustedJSON does), as the spec asks.
func (a *API) verifyPDU(ctx context.Context, origin string, v gomatrixserverlib.IRoomVersion, raw []byte) (gomatrixserverlib.PDU, error) {
	pdu, err := rooms.ParsePDU(v, raw)
	if err != nil {
		return nil, &refusedPDU{fmt.Errorf("invalid event: %w", err)}
	}
	if err := gomatrixserverlib.VerifyEventSignatures(ctx, pdu, a.d.KeyRing, remote.UserIDForSender); err != nil {
		return pdu, &refusedPDU{fmt.Errorf("signature check failed: %w", err)}
	}
	roomID := pdu.RoomID().String()
	for _, server := range []string{origin, remote.ServerOf(string(pdu.SenderID()))} {
		if err := a.checkACL(ctx, roomID, server); err != nil {
			return pdu, err
		}
	}
	return pdu, a.takenDown(ctx, pdu)
}

// receiveEDUs hands each EDU to the handler of its type.
func (a *API) receiveEDUs(ctx context.Context, origin string, edus []gomatrixserverlib.EDU) {
	for _, e := range edus {
		if h := a.eduHandler(e.Type); h != nil {
			h(ctx, origin, json.RawMessage(e.Content))
		}
	}
}

// fetchMissing asks the origin for the events between the room's
// forward extremities and pdu (remote.MissingEvents: /get_missing_events),
// checks each as if it had come in a transaction, and receives them
// oldest first; the oldest may still lack prev events when the gap was
// larger than the walk allows, and get their state from the origin. It
// stops only at a failure to decide (which the transaction is retried
// for): one refused event does not stop the others, those on other
// branches still fit.
func (a *API) fetchMissing(ctx context.Context, origin string, v gomatrixserverlib.IRoomVersion, pdu gomatrixserverlib.PDU) error {
	evs, ferr := a.d.Remote.MissingEvents(ctx, origin, v, pdu, func(raw json.RawMessage) (gomatrixserverlib.PDU, error) {
		return a.verifyPDU(ctx, origin, v, raw)
	})
	for _, ev := range evs {
		_, err := a.receiveOrResolve(ctx, origin, v, ev)
		if err != nil && !decided(err) {
			return err
		}
		if err != nil {
			a.d.Log.Info("federation: refused a fetched missing event", "origin", origin, "event_id", ev.EventID(), "err", err)
		}
	}
	return ferr
}

// pduReason is why a PDU was refused, as the origin is told: the
// reason, unless it comes from a connection this server made (fetching
// a server's keys or missing events), whose dial error would tell the
// origin what a server name it chose resolves to here and whether that
// address answers. That stays in the log.
func pduReason(err error) string {
	var netErr net.Error
	var urlErr *url.Error
	if errors.Is(err, outbound.ErrRefused) || errors.As(err, &netErr) || errors.As(err, &urlErr) {
		return "A server the event depends on could not be reached"
	}
	return err.Error()
}
