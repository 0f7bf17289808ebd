package server

import (
	"bufio"
	"bytes"
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
// though a server at rest runs a few MiB of it. Writable mappings are
// left alone: dropping a private page that has been written would lose
// the write.
//
// It returns how many bytes were advised.
func trimExecutable() int {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 6 || string(fields[5]) != exe {
			continue
		}
		perms := fields[1]
		if len(perms) < 4 || perms[1] == 'w' || perms[3] != 'p' {
			continue
		}
		lo, hi, ok := bytes.Cut(fields[0], []byte{'-'})
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED); e == 0 {
			n += int(end - start)
		}
	}
	return n
}
