package media_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// cuttingRemote is a federation server on loopback that answers every
// media request with a multipart body and, as set by mode, cuts it short.
type cuttingRemote struct {
	addr string
	mu   sync.Mutex
	mode string // "short": fewer bytes than Content-Length; "cut": chunked, closed mid-body; "full"
	hits int
}

func (r *cuttingRemote) set(mode string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mode = mode
}

func (r *cuttingRemote) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits
}

// startCuttingRemote serves TLS (HTTP/1.1 written by hand, so that the
// body can be broken) with the certificate certFile/keyFile.
func startCuttingRemote(t *testing.T, certFile, keyFile string, data []byte) *cuttingRemote {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	r := &cuttingRemote{addr: ln.Addr().String(), mode: "short"}
	const boundary = "cutboundary"
	body := "--" + boundary + "\r\nContent-Type: application/json\r\n\r\n{}\r\n--" + boundary +
		"\r\nContent-Type: image/png\r\n\r\n" + string(data) + "\r\n--" + boundary + "--\r\n"
	half := body[:len(body)/2]
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					req.Body.Close()
					r.mu.Lock()
					mode := r.mode
					r.hits++
					r.mu.Unlock()
					head := "HTTP/1.1 200 OK\r\nContent-Type: multipart/mixed; boundary=" + boundary + "\r\n"
					switch mode {
					case "short":
						fmt.Fprintf(c, "%sContent-Length: %d\r\n\r\n%s", head, len(body), half)
						return
					case "cut":
						fmt.Fprintf(c, "%sTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n", head, len(half), half)
						return
					default:
						fmt.Fprintf(c, "%sContent-Length: %d\r\n\r\n%s", head, len(body), body)
					}
				}
			}()
		}
	}()
	return r
}

// TestRemoteMediaBodyCut: a remote server that breaks off its media
// answer mid-body (fewer bytes than its Content-Length, or a chunked
// body whose connection closes) is a server that could not be reached:
// 502 M_UNKNOWN naming it, no dial details, for downloads and
// thumbnails alike; nothing of the partial body is kept, so the next
// request asks again and, once the server answers whole, gets it all.
func TestRemoteMediaBodyCut(t *testing.T) {
	certFile, keyFile, _ := testserver.SelfSignedCert(t)
	data := pngBytes(t, 300, 200)
	testserver.EachEngine(t, func(c *config.Config) {
		c.Federation.Enabled = true
		c.Federation.CAFile = certFile
		c.Outbound.Allow = testserver.LoopbackAllow()
	}, func(t *testing.T, s *testserver.Server) {
		remote := startCuttingRemote(t, certFile, keyFile, data)
		alice := s.Register("alice", "pw-alice")
		_, port, _ := net.SplitHostPort(remote.addr)
		server := "127.0.0.1:" + port
		for i, mode := range []string{"short", "cut"} {
			remote.set(mode)
			for _, path := range []string{
				"/_matrix/client/v1/media/download/" + server + "/media" + mode,
				"/_matrix/client/v1/media/thumbnail/" + server + "/thumb" + mode + "?width=32&height=32&method=scale",
			} {
				r := get(t, s, alice.AccessToken, path)
				what := mode + " " + path
				testserver.WantError(t, what, r.Status, r.JSON, http.StatusBadGateway, "M_UNKNOWN")
				if msg, _ := r.JSON["error"].(string); !strings.Contains(msg, server) || strings.Contains(msg, "EOF") {
					t.Errorf("%s: error %q should name the server and nothing of the transport", what, msg)
				}
			}
			if n := len(mediaFiles(t, s)); n != 0 {
				t.Fatalf("%s: %d partial files were kept", mode, n)
			}
			if i == 0 && remote.requests() == 0 {
				t.Fatal("the fake remote was never asked")
			}
		}
		before := remote.requests()
		remote.set("full")
		r := get(t, s, alice.AccessToken, "/_matrix/client/v1/media/download/"+server+"/mediashort")
		if r.Status != http.StatusOK || !bytes.Equal(r.Raw, data) {
			t.Fatalf("download once the remote answers whole: %d, %d of %d bytes", r.Status, len(r.Raw), len(data))
		}
		if remote.requests() == before {
			t.Fatal("the whole answer was served without asking the remote again")
		}
	})
}
