package server

import (
	"context"
	"errors"
	"io"
	"net/http"

	"golang.org/x/crypto/acme/autocert"
)

// errACMEStopped is what the ACME manager's cache and client answer once
// the server has shut down.
var errACMEStopped = errors.New("acme: the server has shut down")

// acmeLifetime bounds what the ACME manager does to the server's life.
// autocert.Manager has no Close: the renewal timer it arms for each
// certificate re-arms itself for ever, and its unexported stopRenew is
// all that ends it. So the manager is given a cache and an HTTP client
// that end with the server: a renewal that fires after Shutdown neither
// reads nor writes the data directory nor reaches the ACME server, and
// fails at once (autocert then re-arms its timer for half an hour to an
// hour later, a timer and no goroutine). The client's kept-alive
// connections to the ACME server, and their two goroutines each, are
// closed at Shutdown too.
type acmeLifetime struct {
	ctx       context.Context
	stop      context.CancelFunc
	transport *http.Transport
}

func newACMELifetime(transport *http.Transport) *acmeLifetime {
	ctx, stop := context.WithCancel(context.Background())
	return &acmeLifetime{ctx: ctx, stop: stop, transport: transport}
}

// end is called at Shutdown: requests in flight are cancelled, later
// ones refused, idle connections closed.
func (l *acmeLifetime) end() {
	l.stop()
	l.transport.CloseIdleConnections()
}

// cache wraps c so that it answers errACMEStopped once the server ends.
func (l *acmeLifetime) cache(c autocert.Cache) autocert.Cache { return lifetimeCache{l: l, Cache: c} }

// roundTripper is the manager's transport, refused once the server ends.
func (l *acmeLifetime) roundTripper() http.RoundTripper { return lifetimeTransport{l: l} }

type lifetimeCache struct {
	l *acmeLifetime
	autocert.Cache
}

func (c lifetimeCache) Get(ctx context.Context, name string) ([]byte, error) {
	if c.l.ctx.Err() != nil {
		return nil, errACMEStopped
	}
	return c.Cache.Get(ctx, name)
}

func (c lifetimeCache) Put(ctx context.Context, name string, data []byte) error {
	if c.l.ctx.Err() != nil {
		return errACMEStopped
	}
	return c.Cache.Put(ctx, name, data)
}

func (c lifetimeCache) Delete(ctx context.Context, name string) error {
	if c.l.ctx.Err() != nil {
		return errACMEStopped
	}
	return c.Cache.Delete(ctx, name)
}

type lifetimeTransport struct{ l *acmeLifetime }

// RoundTrip cancels the request when the server ends, until its body is
// closed (autocert's renewal gives it ten minutes of its own).
func (t lifetimeTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.l.ctx.Err() != nil {
		return nil, errACMEStopped
	}
	ctx, cancel := context.WithCancel(r.Context())
	unhook := context.AfterFunc(t.l.ctx, cancel)
	release := func() {
		unhook()
		cancel()
	}
	resp, err := t.l.transport.RoundTrip(r.WithContext(ctx))
	if err != nil {
		release()
		return nil, err
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: release}
	return resp, nil
}

// releasingBody releases a request's context when its body is closed.
type releasingBody struct {
	io.ReadCloser
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}
