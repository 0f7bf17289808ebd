package bench

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The benchmarks that measure the server's own memory and CPU run the
// built cmd/myelin in a process of their own, configured by MYELIN_*
// variables as an operator would: RSS and CPU time read from /proc are
// then the server's alone, not the load generator's. What they share
// (building, starting, stopping, reading /proc) is here.

// buildMyelin builds cmd/myelin into a temporary directory.
func buildMyelin(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "myelin")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/myelin-chat/myelin/cmd/myelin")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building cmd/myelin: %v\n%s", err, out)
	}
	return bin
}

// myelinProcess is a started server. stop ends it (SIGINT, then SIGKILL
// after 30 s) and may be called more than once; it is also called when
// the benchmark ends.
type myelinProcess struct {
	pid  int
	base string
	env  []string // what launchMyelin added to the environment
	stop func()
}

// launchMyelin runs bin with args, the environment's variables plus
// env, its output into dir/myelin.log (appended to, so that a restarted
// server's log follows the first's), and waits until the client API at
// base answers /versions.
func launchMyelin(b *testing.B, bin string, args []string, env []string, dir, base string) myelinProcess {
	b.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	logPath := filepath.Join(dir, "myelin.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop := sync.OnceFunc(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
	})
	b.Cleanup(stop)
	for deadline := time.Now().Add(2 * time.Minute); ; {
		resp, err := http.Get(base + "/_matrix/client/versions")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			b.Fatalf("%s did not start: %v\n%s", bin, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return myelinProcess{pid: cmd.Process.Pid, base: base, env: env, stop: stop}
}

// serveEnv is the configuration of a lone server (no federation) on
// clientAddr with its data in dir and its database at dbURL: rate limits
// off, open registration, cheap bcrypt. The benchmark's own
// MYELIN_SQLITE_SYNCHRONOUS, GOGC and GOMEMLIMIT pass through to it with
// the rest of the environment.
func serveEnv(dir, dbURL, clientAddr string) []string {
	return []string{
		"MYELIN_SERVER_NAME=loadrun.test",
		"MYELIN_DATA_DIR=" + dir,
		"MYELIN_DATABASE_URL=" + dbURL,
		"MYELIN_CLIENT_LISTEN=" + clientAddr,
		"MYELIN_FEDERATION=false",
		"MYELIN_PRESENCE=true",
		"MYELIN_RATE_LIMIT=off",
		"MYELIN_OPEN_REGISTRATION=true",
		"MYELIN_BCRYPT_COST=4",
		"MYELIN_LOG_LEVEL=warn",
	}
}

// freePort is a free host:port on ip.
func freePort(b *testing.B, ip string) string {
	b.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// processCPUOf is a process's user and system CPU time so far
// (/proc/<pid>/stat, fields 14 and 15, in clock ticks of 1/100 s).
func processCPUOf(b *testing.B, pid int) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// The command name (field 2) may hold spaces: fields are counted
	// after its closing parenthesis.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// procStatusKB is a kB field of /proc/<pid>/status (VmHWM: peak RSS).
func procStatusKB(b *testing.B, pid int, field string) uint64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

// resetPeakRSS sets a process's VmHWM back to its current RSS (writing 5
// to /proc/<pid>/clear_refs, Linux 4.0 and later), so that the peak of
// one phase is not that of the setup before it. It says whether it
// could; when not, VmHWM keeps counting from the process's start.
func resetPeakRSS(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0o200) == nil
}

// kibToMiB turns a /proc kB figure into MiB.
func kibToMiB(kb uint64) float64 { return float64(kb) / 1024 }
