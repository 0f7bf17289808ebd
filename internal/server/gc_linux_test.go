package server

import (
	"path/filepath"
	"testing"

	"github.com/myelin-chat/myelin/internal/store"
)

// The quiet check's release runs SQL; run after the executable's trim,
// it mapped back the SQLite code it ran, and a quiet server kept those
// pages until the next check.
func TestReleaseWhileQuietTrimsTheExecutableLast(t *testing.T) {
	db, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "quiet.db"), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	releaseWhileQuiet()
	trimExecutable()
	before := exeRSSKiB(t)
	releaseWhileQuiet()
	after := exeRSSKiB(t)
	t.Logf("executable mapped: %d KiB before the release, %d KiB after", before, after)
	// Trimmed first, the release mapped 3 MiB back; reading smaps alone
	// maps a few hundred KiB.
	if after-before > 1<<10 {
		t.Errorf("the release left %d KiB more of the executable mapped (%d before, %d after): the trim must come last", after-before, before, after)
	}
}
