package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/federation/remote"
	"github.com/myelin-chat/myelin/internal/selfcheck"
	"github.com/myelin-chat/myelin/internal/signing"
)

// resolveFlags collects --resolve host:port=addr.
type resolveFlags map[string]string

func (r resolveFlags) String() string { return fmt.Sprint(map[string]string(r)) }

func (r resolveFlags) Set(v string) error {
	from, to, ok := strings.Cut(v, "=")
	if !ok || !strings.Contains(from, ":") || !strings.Contains(to, ":") {
		return errors.New("want host:port=address:port")
	}
	r[from] = to
	return nil
}

// checkCmd checks the server from the outside in (docs/operations.md,
// "Checking the setup").
func checkCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "YAML configuration file (optional)")
	name := fs.String("server", "", "the server name to check (default: server_name)")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	ca := fs.String("ca", "", "PEM file of extra CA certificates to trust (default: federation.ca_file)")
	resolve := resolveFlags{}
	fs.Var(resolve, "resolve", "host:port=address:port: connect there instead of resolving (repeatable), as curl --resolve")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: myelin check [--config FILE] [--server NAME] [--json] [--resolve host:port=addr] [OTHER_SERVER]")
		fmt.Fprintln(stderr, "Checks what other servers and clients see of this server; given another server's name, also whether it reaches this one.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path, nil)
	if err != nil {
		return err
	}
	if *name == "" {
		*name = cfg.ServerName
	}
	if *ca == "" {
		*ca = cfg.Federation.CAFile
	}
	roots, err := remote.CertPool(*ca)
	if err != nil {
		return err
	}
	// The key this server signs with, when the name checked is its own:
	// the server answering for the name must publish it.
	var keyID string
	var key signing.Key
	if *name == cfg.ServerName {
		if raw, err := os.ReadFile(cfg.SigningKeyPath()); err == nil {
			if key, err = signing.Parse(string(raw)); err == nil {
				keyID = key.ID
			}
		}
	}
	c := selfcheck.New(selfcheck.Options{Roots: roots, Resolve: resolve})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var findings []selfcheck.Finding
	if keyID != "" {
		findings = c.Server(ctx, *name, keyID, key.Public())
	} else {
		findings = c.Server(ctx, *name, "", nil)
	}
	if fs.NArg() > 0 {
		findings = append(findings, c.Reachable(ctx, *name, fs.Arg(0))...)
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"server_name": *name, "ok": !selfcheck.Failed(findings), "findings": findings}); err != nil {
			return err
		}
	} else {
		marks := map[selfcheck.Level]string{selfcheck.OK: "ok  ", selfcheck.Warning: "WARN", selfcheck.Error: "FAIL"}
		for _, f := range findings {
			fmt.Fprintf(stdout, "%s %s: %s\n", marks[f.Level], f.Check, f.Detail)
			if f.Fix != "" && f.Level != selfcheck.OK {
				fmt.Fprintf(stdout, "     fix: %s\n", f.Fix)
			}
		}
	}
	if selfcheck.Failed(findings) {
		return fmt.Errorf("check: %s has problems that stop federation or clients (FAIL above)", *name)
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "%s looks right from the outside.\n", *name)
	}
	return nil
}
