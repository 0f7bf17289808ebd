package server

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// exeRSSKiB is the resident size of this process's read-only mappings of
// its own executable, from /proc/self/smaps.
func exeRSSKiB(t *testing.T) int {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	total, in := 0, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && strings.Contains(fields[0], "-") {
			in = len(fields) >= 6 && fields[5] == exe && fields[1][1] != 'w'
			continue
		}
		if in && len(fields) >= 2 && fields[0] == "Rss:" {
			n, _ := strconv.Atoi(fields[1])
			total += n
		}
	}
	return total
}

func TestTrimExecutableDropsMappedCode(t *testing.T) {
	before := exeRSSKiB(t)
	if before < 1024 {
		t.Fatalf("only %d KiB of the test binary mapped before the trim; cannot tell", before)
	}
	if n := trimExecutable(); n < before<<10 {
		t.Errorf("trimExecutable advised %d bytes, fewer than the %d KiB mapped", n, before)
	}
	after := exeRSSKiB(t)
	t.Logf("executable mapped: %d KiB before the trim, %d KiB after", before, after)
	// The code that runs from the trim to the measure maps back in.
	if after > before/2 {
		t.Errorf("after the trim %d KiB of the executable mapped, before %d KiB", after, before)
	}
	// Code and data still work: the pages come back from the page cache.
	if got := strconv.Itoa(12345); got != "12345" {
		t.Fatalf("strconv after the trim: %q", got)
	}
}

// A position-independent build's relocated read-only data (RELRO) is a
// read-only private mapping of the executable whose pages the dynamic
// loader wrote: dropping them brings back the unrelocated file and the
// process faults at its next interface call. Only mappings without
// pages of their own are trimmed.
func TestCleanExecutableRangesSkipsWrittenPages(t *testing.T) {
	const smaps = `00400000-01006000 r-xp 00000000 fe:00 42                               /srv/myelin
Size:              12312 kB
Rss:               10328 kB
Anonymous:             0 kB
01006000-01c51000 r--p 00c06000 fe:00 42                               /srv/myelin
Size:              12588 kB
Anonymous:             0 kB
01d02000-01ff8000 r--p 01902000 fe:00 42                               /srv/myelin
Size:               3032 kB
Anonymous:          3032 kB
01ff8000-02100000 rw-p 01bf8000 fe:00 42                               /srv/myelin
Anonymous:           780 kB
02100000-02200000 r--p 00000000 fe:00 43                               /usr/lib/libc.so.6
Anonymous:             0 kB
02200000-02300000 rw-p 00000000 00:00 0 
Anonymous:          1024 kB
`
	got := cleanExecutableRanges(strings.NewReader(smaps), "/srv/myelin")
	want := [][2]uint64{{0x400000, 0x1006000}, {0x1006000, 0x1c51000}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("cleanExecutableRanges = %x, want %x", got, want)
	}
}
