package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// BenchmarkRemoteJoinBigRoomProcess is BenchmarkRemoteJoinBigRoom's
// partial-state join with the joining server (hs2) in a process of its
// own: the built cmd/myelin, configured by MYELIN_* variables as an
// operator would, so that its peak RSS (VmHWM of /proc/<pid>/status,
// rss-peak-MiB) and CPU time (cpu-ms, from /proc/<pid>/stat) are of the
// joining server alone, not of both servers and the setup. hs1 runs in
// the benchmark's process as before. One iteration; -benchtime 1x.
func BenchmarkRemoteJoinBigRoomProcess(b *testing.B) {
	for _, engine := range testdb.Engines() {
		b.Run(engine+"/partial-state", func(b *testing.B) { remoteJoinBigRoomProcess(b, engine) })
	}
}

func remoteJoinBigRoomProcess(b *testing.B, engine string) {
	bin := buildMyelin(b)
	nw := testserver.NewNetwork(b)
	host := nw.AddHost(b, "hs2.test")
	nw.Start(b, engine, 1, func(i int, c *config.Config) {
		benchConfig(c)
		c.Federation.RequestTimeout = 5 * time.Minute
	})
	hs1 := nw.Servers[0]
	var roomID string
	timed(b, fmt.Sprintf("a room of %d members and %d state events", bigRoomMembers, bigRoomState), func() {
		roomID = buildBigRoom(b, hs1)
	})
	hs2 := startMyelinProcess(b, bin, engine, host, hs1)
	h := &harness{b: b, base: hs2.base, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	ctx := context.Background()
	bob, err := h.register(ctx, "bob")
	if err != nil {
		b.Fatal(err)
	}

	cpu0 := processCPUOf(b, hs2.pid)
	b.ResetTimer()
	start := time.Now()
	path := clientV3 + "/join/" + url.PathEscape(roomID) + "?server_name=hs1.test"
	if err := h.do(ctx, http.MethodPost, path, bob.Token, []byte("{}"), nil); err != nil {
		b.Fatal(err)
	}
	joined := time.Now()
	if err := h.sendMessage(ctx, bob, roomID, message("hello, big room")); err != nil {
		b.Fatal(err)
	}
	sent := time.Now()
	// A member list waits (up to a minute per request) for the full
	// state; it is complete once every member is in it.
	for {
		var members struct {
			Joined map[string]any `json:"joined"`
		}
		if err := h.do(ctx, http.MethodGet, clientV3+"/rooms/"+url.PathEscape(roomID)+"/joined_members", bob.Token, nil, &members); err != nil {
			b.Fatal(err)
		}
		if len(members.Joined) == bigRoomMembers+2 {
			break
		}
		if time.Since(start) > 15*time.Minute {
			b.Fatalf("hs2 sees %d joined members after 15 minutes, want %d", len(members.Joined), bigRoomMembers+2)
		}
		time.Sleep(50 * time.Millisecond)
	}
	full := time.Now()
	b.StopTimer()
	b.ReportMetric(ms(joined.Sub(start)), "join-ms")
	b.ReportMetric(ms(sent.Sub(joined)), "first-send-ms")
	b.ReportMetric(ms(full.Sub(start)), "full-state-ms")
	b.ReportMetric(ms(processCPUOf(b, hs2.pid)-cpu0), "cpu-ms")
	b.ReportMetric(float64(procStatusKB(b, hs2.pid, "VmHWM"))/1024, "rss-peak-MiB")
}

// startMyelinProcess starts the built server as host of the network,
// federating with hs1, and waits until its client API answers.
func startMyelinProcess(b *testing.B, bin, engine string, host testserver.Host, hs1 *testserver.Server) myelinProcess {
	b.Helper()
	dir := b.TempDir()
	// The client API on the host's loopback address, a port of its own.
	clientAddr := freePort(b, host.Addr[:strings.LastIndexByte(host.Addr, ':')])
	// The send_join of 50,000 events takes longer than the default 30 s
	// under load; request_timeout has no variable of its own.
	cfgFile := filepath.Join(dir, "myelin.yaml")
	if err := os.WriteFile(cfgFile, []byte("federation:\n  request_timeout: 5m\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	env := []string{
		"MYELIN_SERVER_NAME=" + host.Name,
		"MYELIN_DATA_DIR=" + dir,
		"MYELIN_DATABASE_URL=" + testdb.NewURL(b, engine),
		"MYELIN_CLIENT_LISTEN=" + clientAddr,
		"MYELIN_FEDERATION_LISTEN=" + host.Addr,
		"MYELIN_TLS_CERT=" + host.CertFile,
		"MYELIN_TLS_KEY=" + host.KeyFile,
		"MYELIN_FEDERATION_CA_FILE=" + hs1.Config.Federation.CAFile,
		"MYELIN_FEDERATION_ADDRESSES=hs1.test=" + hs1.Config.Listen.Federation + "," + host.Name + "=" + host.Addr,
		"MYELIN_OUTBOUND_ALLOW=127.0.0.0/8,::1/128",
		"MYELIN_RATE_LIMIT=off",
		"MYELIN_OPEN_REGISTRATION=true",
		"MYELIN_BCRYPT_COST=4",
		"MYELIN_LOG_LEVEL=warn",
	}
	return launchMyelin(b, bin, []string{"serve", "--config", cfgFile}, env, dir, "http://"+clientAddr)
}
