package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/myelin-chat/myelin/internal/backup"
	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/server"
)

// backupCmd writes a backup while the server runs (docs/operations.md,
// "Backups").
func backupCmd(args []string, stdout, stderr io.Writer) error {
	fs, path := newFlags("backup", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("backup: usage: myelin backup [--config FILE] DIR")
	}
	dir := fs.Arg(0)
	cfg, err := config.Load(*path, nil)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := backup.Write(ctx, dir, backup.Options{Config: cfg, ConfigPath: *path, Version: server.Version, Progress: stdout})
	if err != nil {
		return err
	}
	var size int64
	for _, f := range m.Files {
		size += f.Size
	}
	fmt.Fprintf(stdout, "wrote %s: %d files, %d bytes\n", dir, len(m.Files), size)
	if m.Database == "postgres" {
		abs, _ := filepath.Abs(dir)
		fmt.Fprintf(stdout, "The database is PostgreSQL: dump it beside the files with\n"+
			"  pg_dump --format=custom --file=%s '<database.url from your configuration>'\n"+
			"Media, keys and configuration are in the backup; the database is not until you do.\n",
			filepath.Join(abs, "myelin.pgdump"))
	}
	return nil
}

// restoreCmd puts a backup back (server stopped).
func restoreCmd(args []string, stdout, stderr io.Writer) error {
	fs, path := newFlags("restore", stderr)
	force := fs.Bool("force", false, "replace an existing database and data directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("restore: usage: myelin restore [--config FILE] [--force] DIR")
	}
	dir := fs.Arg(0)
	// On a new machine the configuration file is not there yet: the
	// backup's own copy says where the data goes, and Restore writes it
	// to --config (after checking it against the manifest, as every
	// file).
	loadFrom := *path
	if *path != "" {
		if _, err := os.Stat(*path); errors.Is(err, os.ErrNotExist) {
			if _, err := os.Stat(filepath.Join(dir, backup.ConfigName)); err == nil {
				loadFrom = filepath.Join(dir, backup.ConfigName)
				fmt.Fprintf(stdout, "%s does not exist: using the backup's configuration, which is restored there\n", *path)
			}
		}
	}
	cfg, err := config.Load(loadFrom, nil)
	if err != nil {
		return err
	}
	m, err := backup.Restore(context.Background(), dir, backup.RestoreOptions{
		Options: backup.Options{Config: cfg, ConfigPath: *path, Progress: stdout}, Force: *force})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored the backup of %s taken by Myelin %s\n", m.ServerName, m.MyelinVersion)
	if m.Database == "postgres" {
		abs, _ := filepath.Abs(dir)
		fmt.Fprintf(stdout, "The database is PostgreSQL: restore it into an empty database with\n"+
			"  pg_restore --no-owner --dbname='<database.url>' %s\n", filepath.Join(abs, "myelin.pgdump"))
	}
	return nil
}
