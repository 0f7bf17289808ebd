// Package backup writes and restores a copy of everything a Myelin server
// keeps: the database (SQLite; PostgreSQL is dumped with its own tools),
// the media store and anything else in the data directory, the signing
// keys and the configuration file.
//
// A backup is a directory:
//
//	manifest.json     what is in it, with a SHA-256 of every file
//	database.sqlite   the SQLite database (absent for PostgreSQL)
//	data/...          the data directory (media, certificates), without
//	                  the live database and temporary files
//	signing.key       the signing key
//	old_signing_keys  retired verify keys, when there are any
//	myelin.yaml       the configuration file, when one was given
package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/store"
)

// FormatVersion is the manifest's format; Restore refuses others.
const FormatVersion = 1

// Manifest describes a backup.
type Manifest struct {
	Format        int    `json:"format"`
	MyelinVersion string `json:"myelin_version"`
	CreatedTS     int64  `json:"created_ts"`
	ServerName    string `json:"server_name"`
	// Database is "sqlite" or "postgres".
	Database   string   `json:"database"`
	Migrations []string `json:"migrations"`
	Files      []File   `json:"files"`
}

// File is one file of a backup, by its path inside it (slash-separated).
type File struct {
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Names of the parts of a backup directory.
const (
	manifestName = "manifest.json"
	databaseName = "database.sqlite"
	dataName     = "data"
	keyName      = "signing.key"
	oldKeysName  = "old_signing_keys"
	configName   = ConfigName
)

// ConfigName is the configuration file's name in a backup.
const ConfigName = "myelin.yaml"

// Options say what to back up or restore.
type Options struct {
	Config *config.Config
	// ConfigPath is the configuration file in use ("" if none).
	ConfigPath string
	// Version is the running binary's version, for the manifest.
	Version string
	// Progress receives one line per step.
	Progress io.Writer
}

func (o Options) say(format string, args ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format+"\n", args...)
	}
}

// Write backs the server up into dir, which must be empty or absent. The
// server may be running: the database is copied from one snapshot first,
// then the files, so every event committed before the backup began is in
// it (media uploaded meanwhile may be too; media deleted meanwhile is
// missing only if nothing in the snapshot still names it, which a delete
// guarantees).
func Write(ctx context.Context, dir string, o Options) (Manifest, error) {
	cfg := o.Config
	if inside(dir, cfg.DataDir) {
		return Manifest{}, fmt.Errorf("backup: %s is inside the data directory %s; write the backup elsewhere", dir, cfg.DataDir)
	}
	if err := emptyDir(dir); err != nil {
		return Manifest{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Manifest{}, err
	}
	m := Manifest{Format: FormatVersion, MyelinVersion: o.Version, CreatedTS: time.Now().UnixMilli(), ServerName: cfg.ServerName}
	url := cfg.DatabaseURL()
	migs, err := store.RecordedMigrations(ctx, url)
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: reading the database: %w", err)
	}
	m.Migrations = migs
	dbPath := store.SQLitePath(url)
	if dbPath != "" {
		m.Database = "sqlite"
		o.say("copying the database %s", dbPath)
		if err := store.BackupSQLite(ctx, dbPath, filepath.Join(dir, databaseName)); err != nil {
			return Manifest{}, err
		}
	} else {
		m.Database = "postgres"
	}
	o.say("copying the data directory %s", cfg.DataDir)
	if err := copyTree(ctx, cfg.DataDir, filepath.Join(dir, dataName), skipper(cfg)); err != nil {
		return Manifest{}, err
	}
	for _, f := range []struct{ from, to string }{
		{cfg.SigningKeyPath(), keyName}, {cfg.OldSigningKeysPath(), oldKeysName}, {o.ConfigPath, configName},
	} {
		if f.from == "" {
			continue
		}
		if err := copyFile(f.from, filepath.Join(dir, f.to)); err != nil {
			if errors.Is(err, fs.ErrNotExist) && f.to == oldKeysName {
				continue // no key was ever retired
			}
			return Manifest{}, err
		}
	}
	o.say("checksumming")
	if m.Files, err = listFiles(dir); err != nil {
		return Manifest{}, err
	}
	raw, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, manifestName), raw, 0o600); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// skipper leaves out of the data directory's copy the live SQLite
// database (copied from its snapshot instead), its journal files, the
// signing keys (copied on their own), and temporary files.
func skipper(cfg *config.Config) func(path string) bool {
	skip := map[string]bool{}
	if p := store.SQLitePath(cfg.DatabaseURL()); p != "" {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			skip[filepath.Clean(p+suffix)] = true
		}
	}
	skip[filepath.Clean(cfg.SigningKeyPath())] = true
	skip[filepath.Clean(cfg.OldSigningKeysPath())] = true
	tmp := filepath.Join(cfg.DataDir, "media", "tmp")
	return func(path string) bool {
		return skip[filepath.Clean(path)] || filepath.Clean(path) == filepath.Clean(tmp)
	}
}

// Read loads and checks the manifest of the backup in dir: every file it
// lists is present with its checksum, and nothing else is.
func Read(dir string) (Manifest, error) {
	raw, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return Manifest{}, fmt.Errorf("backup: manifest.json: %w", err)
	}
	if m.Format != FormatVersion {
		return Manifest{}, fmt.Errorf("backup: manifest format %d, this binary reads %d", m.Format, FormatVersion)
	}
	if m.Database != "sqlite" && m.Database != "postgres" {
		return Manifest{}, fmt.Errorf("backup: manifest names database %q", m.Database)
	}
	have, err := listFiles(dir)
	if err != nil {
		return Manifest{}, err
	}
	want := map[string]File{}
	for _, f := range m.Files {
		want[f.Path] = f
	}
	for _, f := range have {
		if f.Path == manifestName || strings.HasSuffix(f.Path, ".pgdump") {
			continue
		}
		w, ok := want[f.Path]
		switch {
		case !ok:
			return Manifest{}, fmt.Errorf("backup: %s is not in the manifest", f.Path)
		case w != f:
			return Manifest{}, fmt.Errorf("backup: %s does not match its checksum in the manifest (damaged or changed)", f.Path)
		}
		delete(want, f.Path)
	}
	for p := range want {
		return Manifest{}, fmt.Errorf("backup: %s is missing", p)
	}
	return m, nil
}

// RestoreOptions add to Options what a restore decides.
type RestoreOptions struct {
	Options
	// Force replaces an existing database and data directory.
	Force bool
}

// Restore puts the backup in dir back where o.Config says the server
// keeps its data. The server must be stopped. It refuses a damaged
// backup, one of another server name, one whose schema is newer than
// this binary's, and, unless Force, a data directory or database that
// already holds something.
func Restore(ctx context.Context, dir string, o RestoreOptions) (Manifest, error) {
	cfg := o.Config
	m, err := Read(dir)
	if err != nil {
		return Manifest{}, err
	}
	if m.ServerName != cfg.ServerName {
		return Manifest{}, fmt.Errorf("backup: it is of server %q, the configuration names %q; a server name cannot change", m.ServerName, cfg.ServerName)
	}
	unknown, err := store.UnknownMigrations(m.Migrations)
	if err != nil {
		return Manifest{}, err
	}
	if len(unknown) > 0 {
		return Manifest{}, fmt.Errorf("backup: it was taken by a newer Myelin (%s); restore it with that version", strings.Join(unknown, ", "))
	}
	dbPath := store.SQLitePath(cfg.DatabaseURL())
	if (m.Database == "sqlite") != (dbPath != "") {
		return Manifest{}, fmt.Errorf("backup: it holds a %s database but the configuration uses %s; restore with the same engine, then move with myelin migrate-db",
			m.Database, engine(dbPath))
	}
	if !o.Force {
		if err := emptyDir(cfg.DataDir); err != nil {
			return Manifest{}, fmt.Errorf("%w (use --force to replace it)", err)
		}
		if dbPath != "" {
			if _, err := os.Stat(dbPath); err == nil {
				return Manifest{}, fmt.Errorf("backup: %s already exists (use --force to replace it)", dbPath)
			}
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return Manifest{}, err
	}
	if dbPath != "" {
		o.say("restoring the database to %s", dbPath)
		// A write-ahead log left beside the restored file would be
		// replayed into it at the next open.
		for _, suffix := range []string{"-wal", "-shm", "-journal"} {
			if err := os.Remove(dbPath + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return Manifest{}, err
			}
		}
		if err := copyFileOver(filepath.Join(dir, databaseName), dbPath); err != nil {
			return Manifest{}, err
		}
	}
	o.say("restoring the data directory %s", cfg.DataDir)
	if err := copyTreeOver(ctx, filepath.Join(dir, dataName), cfg.DataDir); err != nil {
		return Manifest{}, err
	}
	for _, f := range []struct{ from, to string }{{keyName, cfg.SigningKeyPath()}, {oldKeysName, cfg.OldSigningKeysPath()}} {
		if err := copyFileOver(filepath.Join(dir, f.from), f.to); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return Manifest{}, err
		}
	}
	if o.ConfigPath != "" {
		if _, err := os.Stat(o.ConfigPath); errors.Is(err, fs.ErrNotExist) {
			if err := copyFile(filepath.Join(dir, configName), o.ConfigPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return Manifest{}, err
			}
		}
	}
	return m, nil
}

// inside reports whether path is dir or below it.
func inside(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func engine(sqlitePath string) string {
	if sqlitePath != "" {
		return "sqlite"
	}
	return "postgres"
}

// emptyDir fails if dir exists and holds anything.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("backup: %s is not empty", dir)
	}
	return nil
}

// listFiles lists every regular file under dir with its checksum, in
// path order.
func listFiles(dir string) ([]File, error) {
	var out []File
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		out = append(out, File{Path: filepath.ToSlash(rel), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, err
}

// copyTree copies the regular files under from to to, leaving out what
// skip says. A file that disappears while the tree is walked (media
// deleted by the running server) is left out.
func copyTree(ctx context.Context, from, to string, skip func(string) bool) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && path != from {
			return nil
		}
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if skip != nil && skip(path) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		dest := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dest, 0o700)
		case d.Type().IsRegular():
			if err := copyFile(path, dest); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return nil
	})
}

// copyTreeOver is copyTree onto an existing tree, replacing files.
func copyTreeOver(ctx context.Context, from, to string) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		dest := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dest, 0o700)
		}
		return copyFileOver(path, dest)
	})
}

// copyFile copies from to a new file to, with the source's permission
// bits kept private.
func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// copyFileOver writes from to a temporary file beside to and renames it
// into place, so that an interrupted restore never leaves half a file
// under the real name.
func copyFileOver(from, to string) error {
	if _, err := os.Stat(from); err != nil {
		return err
	}
	tmp := to + ".restoring"
	_ = os.Remove(tmp)
	if err := copyFile(from, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, to)
}
