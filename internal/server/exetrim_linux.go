package server

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"strconv"
	"syscall"
)

// trimExecutable drops this process's page-table entries for the
// read-only mappings of its own executable (code, read-only data, the
// function tables). The pages stay in the page cache; the ones the
// server runs again fault back in at a microsecond or so per 64 KiB.
//
// Why: the kernel maps a file page into the process for every page the
// process touches, and, around each fault, the up to 16 neighbours that
// are in the page cache already (fault-around). Start-up runs the init
// function of every linked package, spread over the whole binary: after
// it, 20 of the 25 MiB of code and tables are mapped and counted in RSS,
// though a server at rest runs a few MiB of it.
//
// Only mappings whose every page is still the file's are dropped. A
// written private page is the process's own copy (Anonymous in smaps),
// and dropping it would bring the file's back: writable mappings, and
// in a position-independent build the relocated read-only data the
// dynamic loader wrote before making it read-only (RELRO), keep theirs.
//
// It returns how many bytes were advised.
func trimExecutable() int {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	for _, r := range cleanExecutableRanges(f, exe) {
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, uintptr(r[0]), uintptr(r[1]-r[0]), syscall.MADV_DONTNEED); e == 0 {
			n += int(r[1] - r[0])
		}
	}
	return n
}

// cleanExecutableRanges reads smaps and returns the [start, end) of each
// private, unwritable mapping of exe that has no page of its own
// (Anonymous: 0 kB).
func cleanExecutableRanges(smaps io.Reader, exe string) [][2]uint64 {
	var out [][2]uint64
	var start, end uint64
	candidate := false
	sc := bufio.NewScanner(smaps)
	for sc.Scan() {
		fields := bytes.Fields(sc.Bytes())
		if len(fields) == 0 {
			continue
		}
		if lo, hi, ok := bytes.Cut(fields[0], []byte{'-'}); ok && len(fields) >= 5 {
			// A mapping: start-end perms offset dev inode [path].
			var err1, err2 error
			start, err1 = strconv.ParseUint(string(lo), 16, 64)
			end, err2 = strconv.ParseUint(string(hi), 16, 64)
			perms := fields[1]
			candidate = err1 == nil && err2 == nil && end > start &&
				len(fields) == 6 && string(fields[5]) == exe &&
				len(perms) == 4 && perms[1] != 'w' && perms[3] == 'p'
			continue
		}
		if !candidate || string(fields[0]) != "Anonymous:" || len(fields) < 2 {
			continue
		}
		candidate = false
		if string(fields[1]) == "0" {
			out = append(out, [2]uint64{start, end})
		}
	}
	return out
}
