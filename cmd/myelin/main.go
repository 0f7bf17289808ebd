// Command myelin is the Myelin Matrix homeserver.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/server"
	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/store"
)

const usage = `Usage: myelin [command] [flags]

Commands:
  serve           run the homeserver (the default)
  generate-keys   write a new ed25519 signing key
  rotate-key      retire the signing key for a new one (server stopped)
  create-account  create a local account
  backup DIR      write a backup of the database, media, keys and config
  restore DIR     put a backup back (server stopped)
  migrate-db      copy the database to PostgreSQL (or back to SQLite)
  admin           everyday admin tasks on a running server (myelin admin -h)
  check [SERVER]  check the server as other servers and clients see it
  config          print the commented default configuration
  version         print the version

Run "myelin <command> -h" for a command's flags. Environment variables
(MYELIN_*) override the configuration file; see the README.
`

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "myelin:", err)
		os.Exit(1)
	}
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(args, stderr)
	case "generate-keys":
		return generateKeys(args, stdout, stderr)
	case "rotate-key":
		return rotateKey(args, stdout, stderr)
	case "create-account":
		return createAccount(args, stdin, stdout, stderr)
	case "backup":
		return backupCmd(args, stdout, stderr)
	case "restore":
		return restoreCmd(args, stdout, stderr)
	case "migrate-db":
		return migrateDB(args, stdout, stderr)
	case "admin":
		return adminCmd(args, stdin, stdout, stderr)
	case "check":
		return checkCmd(args, stdout, stderr)
	case "config":
		_, err := io.WriteString(stdout, config.DefaultYAML())
		return err
	case "version":
		_, err := fmt.Fprintln(stdout, "myelin", server.Version)
		return err
	case "help", "-h", "--help":
		_, err := io.WriteString(stdout, usage)
		return err
	}
	io.WriteString(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func newFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "YAML configuration file (optional)")
	return fs, path
}

func serve(args []string, stderr io.Writer) error {
	fs, path := newFlags("serve", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path, nil)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	keepHeapProfile(cfg.Listen.Pprof)
	log := server.NewLogger(cfg.Log, os.Stderr)
	if cfg.Listen.Pprof != "" {
		stopPprof, err := servePprof(cfg.Listen.Pprof, log)
		if err != nil {
			return fmt.Errorf("listen.pprof: %w", err)
		}
		defer stopPprof()
	}
	return server.Run(ctx, cfg, log)
}

func generateKeys(args []string, stdout, stderr io.Writer) error {
	fs, path := newFlags("generate-keys", stderr)
	out := fs.String("output", "", "key file to write (default: the configured signing_key_path; - for standard output)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	key, err := signing.Generate()
	if err != nil {
		return err
	}
	if *out == "-" {
		_, err := io.WriteString(stdout, key.Encode())
		return err
	}
	if *out == "" {
		cfg, err := config.Load(*path, nil)
		if err != nil {
			return err
		}
		*out = cfg.SigningKeyPath()
	}
	if err := signing.WriteNew(*out, key); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s already exists; refusing to replace a signing key", *out)
		}
		return err
	}
	_, err = fmt.Fprintf(stdout, "wrote %s (%s)\n", *out, key.ID)
	return err
}

// rotateKey retires the signing key (run it while the server is
// stopped): the old verify key is published as an old_verify_key from
// the next start, and a new key signs from then on.
func rotateKey(args []string, stdout, stderr io.Writer) error {
	fs, path := newFlags("rotate-key", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path, nil)
	if err != nil {
		return err
	}
	old, fresh, err := signing.Rotate(cfg.SigningKeyPath(), cfg.OldSigningKeysPath(), time.Now().UnixMilli())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "retired %s (kept in %s), now signing with %s\n", old.ID, cfg.OldSigningKeysPath(), fresh.ID)
	return err
}

func createAccount(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs, path := newFlags("create-account", stderr)
	user := fs.String("user", "", "localpart or full user ID of the new account")
	password := fs.String("password", "", "password (read from standard input when absent)")
	isAdmin := fs.Bool("admin", false, "make the account a server admin")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Also accept the positional form: create-account USER [PASSWORD].
	rest := fs.Args()
	if *user == "" && len(rest) > 0 {
		*user, rest = rest[0], rest[1:]
	}
	if *password == "" && len(rest) > 0 {
		*password = rest[0]
	}
	if *user == "" {
		return errors.New("create-account: --user is required")
	}
	if *password == "" {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		*password = strings.TrimRight(line, "\r\n")
	}
	if *password == "" {
		return errors.New("create-account: a password is required")
	}
	cfg, err := config.Load(*path, nil)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	db, err := store.Open(ctx, cfg.DatabaseURL(), 2, store.Synchronous(cfg.Database.SQLiteSynchronous))
	if err != nil {
		return err
	}
	defer db.Close()
	acc := accounts.New(db, accounts.Options{ServerName: cfg.ServerName, BcryptCost: cfg.Auth.BcryptCost})
	lp := *user
	if strings.HasPrefix(lp, "@") {
		var local bool
		if lp, local = acc.LocalpartOf(lp); !local {
			return fmt.Errorf("create-account: %s is not on %s", *user, cfg.ServerName)
		}
	}
	if err := acc.ValidateLocalpart(lp); err != nil {
		return fmt.Errorf("create-account: %v", err)
	}
	u, err := acc.CreateAccount(ctx, accounts.NewAccount{Localpart: lp, Password: *password, Admin: *isAdmin})
	if err != nil {
		return fmt.Errorf("create-account: %v", err)
	}
	_, err = fmt.Fprintf(stdout, "created %s (admin: %v)\n", u.UserID, u.IsAdmin)
	return err
}
