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
