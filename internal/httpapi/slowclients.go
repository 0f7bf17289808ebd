package httpapi

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// What a reverse proxy in front of a server does for it against slow or
// greedy clients (nginx's client_body_timeout and limit_conn), done here
// because Myelin is often run without one.

// BodyPace bounds how slowly a request body may arrive: it must be
// complete within Grace plus one second per MinRate bytes received. A
// client trickling a byte every few seconds is cut off after Grace; an
// upload of a large file on a slow but honest link earns its time as it
// goes. A zero Grace turns the bound off.
type BodyPace struct {
	Grace   time.Duration
	MinRate int64 // bytes per second
}

// errBodyTimeout is what a handler reading a body too slowly sent gets;
// nginx answers 408 too. The connection is not reused afterwards.
var errBodyTimeout = &mxerr.Error{Status: http.StatusRequestTimeout, Code: "M_UNKNOWN",
	Message: "The request body was not received in time"}

// PaceBodies puts the BodyPace deadline on every request body h reads.
// It must wrap the server's own ResponseWriter (be the outermost
// handler), which sets the connection's read deadline.
func PaceBodies(h http.Handler, pace BodyPace) http.Handler {
	if pace.Grace <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &pacedBody{body: r.Body, rc: http.NewResponseController(w), start: time.Now(), pace: pace}
		}
		h.ServeHTTP(w, r)
	})
}

type pacedBody struct {
	body  io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	pace  BodyPace
	read  int64
	done  bool
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.done {
		return b.body.Read(p)
	}
	allowed := b.pace.Grace
	if b.pace.MinRate > 0 {
		allowed += time.Duration(float64(b.read) / float64(b.pace.MinRate) * float64(time.Second))
	}
	// Where the deadline cannot be set (a connection type without
	// one), the body is read unbounded, as before.
	_ = b.rc.SetReadDeadline(b.start.Add(allowed))
	n, err := b.body.Read(p)
	b.read += int64(n)
	switch {
	case err == io.EOF:
		// The body is complete: the deadline must not fire under a
		// handler still at work (a read error cancels its context).
		// net/http's HTTP/1 server clears it itself when it starts its
		// background read; not every transport does.
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		return n, errBodyTimeout
	}
	return n, err
}

func (b *pacedBody) Close() error { return b.body.Close() }

// LimitConnsPerIP lets each remote address hold at most max connections
// to ln at once; further ones are answered 429 M_LIMIT_EXCEEDED (plain
// HTTP; plainHTTP false just closes them, as under TLS) and closed. A
// max below 1 returns ln unchanged. Behind a reverse proxy every
// connection comes from the proxy, which must do the limiting itself.
func LimitConnsPerIP(ln net.Listener, max int, plainHTTP bool) net.Listener {
	if max < 1 {
		return ln
	}
	return &connLimiter{Listener: ln, max: max, plain: plainHTTP, open: map[string]int{}}
}

type connLimiter struct {
	net.Listener
	max   int
	plain bool
	mu    sync.Mutex
	open  map[string]int
}

// tooManyConns is written raw: the connection never reaches net/http.
var tooManyConns = func() []byte {
	body := `{"errcode":"M_LIMIT_EXCEEDED","error":"Too many connections from this address"}`
	return []byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c.RemoteAddr())
		l.mu.Lock()
		ok := l.open[ip] < l.max
		if ok {
			l.open[ip]++
		}
		l.mu.Unlock()
		if ok {
			return &limitedConn{Conn: c, release: func() { l.release(ip) }}, nil
		}
		go l.refuse(c)
	}
}

// refuse answers a connection over the limit without waiting for its
// request (which a slow client would never finish sending).
func (l *connLimiter) refuse(c net.Conn) {
	defer c.Close()
	if l.plain {
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = c.Write(tooManyConns)
	}
}

func (l *connLimiter) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
}

func remoteIP(a net.Addr) string {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// limitedConn gives its slot back once, however often it is closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
