package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/store"
)

const adminUsage = `Usage: myelin admin [--config FILE] [--url URL] [--token TOKEN] [--as USER] [--json] COMMAND [ARGS]

Everyday tasks on a running server, through its admin API (the same
services synapse-admin and moderation bots use).

Commands:
  status                          server version, users, rooms, federation
  users [SEARCH]                  list users (search in user IDs and names)
  user USER                       show one user
  reset-password USER [PASSWORD]  set a password (read from standard input
                                  when absent); --keep-devices keeps sessions
  deactivate USER [--erase]       deactivate an account (--erase: GDPR erase)
  make-admin USER [--revoke]      make a user a server admin (or stop)
  rooms [SEARCH]                  list rooms
  delete-room ROOM [--purge] [--block]
                                  remove everyone from a room and forget it
                                  (--purge: delete its events too; --block:
                                  refuse future joins); waits until done
  quarantine-media MXC            quarantine a file (mxc://server/id)
  federation                      federation destinations: failures, back-off
                                  and what waits in the queue for each

Authentication: --token (or MYELIN_ADMIN_TOKEN) is an admin's access token.
Without one, the command signs in as a server admin itself (--as, or the
first admin account) through the database named by the configuration, for
the duration of the command: run it on the server, as the user that runs
Myelin.
`

// adminCLI is one run of "myelin admin".
type adminCLI struct {
	base   string
	token  string
	json   bool
	out    io.Writer
	client *http.Client
	// cleanup signs out a session the command opened for itself.
	cleanup func()
}

func adminCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { io.WriteString(stderr, adminUsage) }
	path := fs.String("config", "", "YAML configuration file (optional)")
	base := fs.String("url", "", "the server's client API (default: listen.client on this machine, https with listen.client_tls)")
	token := fs.String("token", os.Getenv("MYELIN_ADMIN_TOKEN"), "an admin's access token (default: sign in through the database)")
	as := fs.String("as", "", "the admin account to act as when signing in through the database")
	asJSON := fs.Bool("json", false, "print the API's JSON answers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		io.WriteString(stderr, adminUsage)
		return errors.New("admin: a command is required")
	}
	cfg, err := config.Load(*path, nil)
	if err != nil {
		return err
	}
	a := &adminCLI{base: strings.TrimRight(*base, "/"), token: *token, json: *asJSON, out: stdout,
		client: &http.Client{Timeout: 60 * time.Second}, cleanup: func() {}}
	if a.base == "" {
		// The server's own listener, on this machine.
		a.base = localClientURL(cfg)
		a.client = localClient(a.base, 60*time.Second, false)
	}
	if a.token == "" {
		if err := a.signIn(cfg, *as); err != nil {
			return err
		}
	}
	defer a.cleanup()
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "status":
		return a.status()
	case "users":
		return a.users(rest)
	case "user":
		return a.user(rest)
	case "reset-password":
		return a.resetPassword(rest, stdin)
	case "deactivate":
		return a.deactivate(rest)
	case "make-admin":
		return a.makeAdmin(rest)
	case "rooms":
		return a.rooms(rest)
	case "delete-room":
		return a.deleteRoom(rest)
	case "quarantine-media":
		return a.quarantine(rest)
	case "federation":
		return a.federation()
	}
	io.WriteString(stderr, adminUsage)
	return fmt.Errorf("admin: unknown command %q", cmd)
}

// signIn opens a session for a server admin through the database, and
// arranges for it to be signed out through the API when the command
// ends (the server forgets the token at once, not at its cache's pace).
func (a *adminCLI) signIn(cfg *config.Config, as string) error {
	ctx := context.Background()
	db, err := store.Open(ctx, cfg.DatabaseURL(), 2, store.Synchronous(cfg.Database.SQLiteSynchronous))
	if err != nil {
		return fmt.Errorf("admin: no --token, and the database cannot be opened to sign in: %w", err)
	}
	defer db.Close()
	acc := accounts.New(db, accounts.Options{ServerName: cfg.ServerName, BcryptCost: cfg.Auth.BcryptCost})
	lp := as
	if lp == "" {
		admins := true
		active := false
		list, _, err := db.ListUsers(ctx, store.UserQuery{Admins: &admins, Deactivated: &active, Order: "creation_ts", Limit: 1})
		if err != nil {
			return err
		}
		if len(list) == 0 {
			return errors.New("admin: the server has no admin account; create one with myelin create-account --admin, or pass --token")
		}
		lp = list[0].Localpart
	} else if strings.HasPrefix(lp, "@") {
		var local bool
		if lp, local = acc.LocalpartOf(lp); !local {
			return fmt.Errorf("admin: %s is not on %s", as, cfg.ServerName)
		}
	}
	u, err := acc.User(ctx, lp)
	if err != nil {
		return fmt.Errorf("admin: %s: %w", lp, err)
	}
	if !u.IsAdmin || u.Deactivated {
		return fmt.Errorf("admin: %s is not an active server admin", u.UserID)
	}
	name := "myelin admin (shell)"
	login, err := acc.StartSession(ctx, accounts.SessionRequest{Localpart: lp, DisplayName: &name, Agent: "myelin-admin"})
	if err != nil {
		return err
	}
	a.token = login.AccessToken
	a.cleanup = func() { _, _ = a.call(http.MethodPost, "/_matrix/client/v3/logout", nil) }
	return nil
}

// call makes one admin API request and decodes its JSON answer; an
// error answer becomes an error with the server's errcode and message.
func (a *adminCLI) call(method, path string, body any) (map[string]any, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin: is the server running at %s? %w", a.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			return nil, fmt.Errorf("admin: %s %s: %d, not JSON: %.200s", method, path, resp.StatusCode, raw)
		}
	}
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("admin: %s %s: %d %v: %v", method, path, resp.StatusCode, out["errcode"], out["error"])
	}
	return out, nil
}

// show prints the JSON answer with --json, or else the human form.
func (a *adminCLI) show(v map[string]any, human func(w io.Writer)) error {
	if a.json {
		enc := json.NewEncoder(a.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
	human(tw)
	return tw.Flush()
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		if x == "" {
			return "-"
		}
		return x
	case float64:
		return fmt.Sprintf("%.0f", x)
	case bool:
		if x {
			return "yes"
		}
		return "no"
	}
	return fmt.Sprint(v)
}

func list(v any) []map[string]any {
	items, _ := v.([]any)
	out := make([]map[string]any, 0, len(items))
	for _, it := range items {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func one(args []string, what string) (string, error) {
	if len(args) < 1 || args[0] == "" {
		return "", fmt.Errorf("admin: %s is required", what)
	}
	return args[0], nil
}

func (a *adminCLI) status() error {
	ver, err := a.call(http.MethodGet, "/_synapse/admin/v1/server_version", nil)
	if err != nil {
		return err
	}
	users, err := a.call(http.MethodGet, "/_synapse/admin/v2/users?limit=1&guests=true", nil)
	if err != nil {
		return err
	}
	rooms, err := a.call(http.MethodGet, "/_synapse/admin/v1/rooms?limit=1", nil)
	if err != nil {
		return err
	}
	dests, err := a.call(http.MethodGet, "/_synapse/admin/v1/federation/destinations?limit=1000", nil)
	if err != nil {
		return err
	}
	failing := 0
	var queuedPDUs, queuedEDUs float64
	for _, d := range list(dests["destinations"]) {
		if n, _ := d["failure_ts"].(float64); n > 0 {
			failing++
		}
		p, _ := d["queued_pdus"].(float64)
		e, _ := d["queued_edus"].(float64)
		queuedPDUs, queuedEDUs = queuedPDUs+p, queuedEDUs+e
	}
	all := map[string]any{"server_version": ver["server_version"], "users": users["total"], "rooms": rooms["total_rooms"],
		"destinations": dests["total"], "failing_destinations": failing, "queued_pdus": queuedPDUs, "queued_edus": queuedEDUs}
	return a.show(all, func(w io.Writer) {
		fmt.Fprintf(w, "version\t%s\n", str(ver["server_version"]))
		fmt.Fprintf(w, "users\t%s\n", str(users["total"]))
		fmt.Fprintf(w, "rooms\t%s\n", str(rooms["total_rooms"]))
		fmt.Fprintf(w, "federation destinations\t%s (%d failing; see myelin admin federation)\n", str(dests["total"]), failing)
		fmt.Fprintf(w, "federation queue\t%.0f events, %.0f EDUs waiting\n", queuedPDUs, queuedEDUs)
	})
}

func (a *adminCLI) users(args []string) error {
	q := url.Values{"limit": {"1000"}, "guests": {"true"}, "deactivated": {"true"}}
	if len(args) > 0 {
		q.Set("name", args[0])
	}
	v, err := a.call(http.MethodGet, "/_synapse/admin/v2/users?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	return a.show(v, func(w io.Writer) {
		fmt.Fprintln(w, "USER\tNAME\tADMIN\tDEACTIVATED\tLOCKED")
		for _, u := range list(v["users"]) {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", str(u["name"]), str(u["displayname"]), str(u["admin"]), str(u["deactivated"]), str(u["locked"]))
		}
		fmt.Fprintf(w, "%s users\n", str(v["total"]))
	})
}

func (a *adminCLI) user(args []string) error {
	id, err := one(args, "a user ID")
	if err != nil {
		return err
	}
	v, err := a.call(http.MethodGet, "/_synapse/admin/v2/users/"+url.PathEscape(id), nil)
	if err != nil {
		return err
	}
	return a.show(v, func(w io.Writer) {
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "%s\t%s\n", k, str(v[k]))
		}
	})
}

func (a *adminCLI) resetPassword(args []string, stdin io.Reader) error {
	fs := flag.NewFlagSet("reset-password", flag.ContinueOnError)
	keep := fs.Bool("keep-devices", false, "do not sign the user's devices out")
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	id, err := one(fs.Args(), "a user ID")
	if err != nil {
		return err
	}
	pw := ""
	if fs.NArg() > 1 {
		pw = fs.Arg(1)
	} else {
		line, err := readLine(stdin)
		if err != nil {
			return err
		}
		pw = line
	}
	if pw == "" {
		return errors.New("admin: reset-password: a password is required")
	}
	v, err := a.call(http.MethodPost, "/_synapse/admin/v1/reset_password/"+url.PathEscape(id),
		map[string]any{"new_password": pw, "logout_devices": !*keep})
	if err != nil {
		return err
	}
	return a.show(v, func(w io.Writer) { fmt.Fprintf(w, "password of %s reset\n", id) })
}

func (a *adminCLI) deactivate(args []string) error {
	fs := flag.NewFlagSet("deactivate", flag.ContinueOnError)
	erase := fs.Bool("erase", false, "erase the user's messages for users who join later, and their profile")
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	id, err := one(fs.Args(), "a user ID")
	if err != nil {
		return err
	}
	v, err := a.call(http.MethodPost, "/_synapse/admin/v1/deactivate/"+url.PathEscape(id), map[string]any{"erase": *erase})
	if err != nil {
		return err
	}
	return a.show(v, func(w io.Writer) { fmt.Fprintf(w, "%s deactivated\n", id) })
}

func (a *adminCLI) makeAdmin(args []string) error {
	fs := flag.NewFlagSet("make-admin", flag.ContinueOnError)
	revoke := fs.Bool("revoke", false, "take the admin right away instead")
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	id, err := one(fs.Args(), "a user ID")
	if err != nil {
		return err
	}
	if _, err := a.call(http.MethodGet, "/_synapse/admin/v2/users/"+url.PathEscape(id), nil); err != nil {
		return err // PUT would create a missing account
	}
	v, err := a.call(http.MethodPut, "/_synapse/admin/v2/users/"+url.PathEscape(id), map[string]any{"admin": !*revoke})
	if err != nil {
		return err
	}
	return a.show(v, func(w io.Writer) { fmt.Fprintf(w, "%s admin: %s\n", id, str(v["admin"])) })
}

func (a *adminCLI) rooms(args []string) error {
	q := url.Values{"limit": {"1000"}}
	if len(args) > 0 {
		q.Set("search_term", args[0])
	}
	v, err := a.call(http.MethodGet, "/_synapse/admin/v1/rooms?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	return a.show(v, func(w io.Writer) {
		fmt.Fprintln(w, "ROOM\tNAME\tMEMBERS\tLOCAL\tVERSION")
		for _, r := range list(v["rooms"]) {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", str(r["room_id"]), str(r["name"]), str(r["joined_members"]), str(r["joined_local_members"]), str(r["version"]))
		}
		fmt.Fprintf(w, "%s rooms\n", str(v["total_rooms"]))
	})
}

func (a *adminCLI) deleteRoom(args []string) error {
	fs := flag.NewFlagSet("delete-room", flag.ContinueOnError)
	purge := fs.Bool("purge", false, "delete the room's events from the database too")
	block := fs.Bool("block", false, "refuse future joins and invites to the room")
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	room, err := one(fs.Args(), "a room ID")
	if err != nil {
		return err
	}
	started, err := a.call(http.MethodDelete, "/_synapse/admin/v2/rooms/"+url.PathEscape(room), map[string]any{"purge": *purge, "block": *block})
	if err != nil {
		return err
	}
	id, _ := started["delete_id"].(string)
	var status map[string]any
	for deadline := time.Now().Add(10 * time.Minute); ; {
		status, err = a.call(http.MethodGet, "/_synapse/admin/v2/rooms/delete_status/"+url.PathEscape(id), nil)
		if err != nil {
			return err
		}
		st, _ := status["status"].(string)
		if st == "complete" || st == "failed" {
			if st == "failed" {
				return fmt.Errorf("admin: deleting %s failed: %v", room, status["error"])
			}
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("admin: deleting %s still %s after 10 minutes (delete_id %s)", room, st, id)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return a.show(status, func(w io.Writer) {
		res, _ := status["shutdown_room"].(map[string]any)
		kicked, _ := res["kicked_users"].([]any)
		fmt.Fprintf(w, "%s deleted: %d local users removed, purged: %v, blocked: %v\n", room, len(kicked), *purge, *block)
	})
}

func (a *adminCLI) quarantine(args []string) error {
	mxc, err := one(args, "an mxc:// URI")
	if err != nil {
		return err
	}
	server, mediaID, ok := strings.Cut(strings.TrimPrefix(mxc, "mxc://"), "/")
	if !strings.HasPrefix(mxc, "mxc://") || !ok || server == "" || mediaID == "" {
		return fmt.Errorf("admin: %q is not mxc://server/media_id", mxc)
	}
	v, err := a.call(http.MethodPost, "/_synapse/admin/v1/media/quarantine/"+url.PathEscape(server)+"/"+url.PathEscape(mediaID), map[string]any{})
	if err != nil {
		return err
	}
	return a.show(v, func(w io.Writer) { fmt.Fprintf(w, "%s quarantined\n", mxc) })
}

func (a *adminCLI) federation() error {
	// failure_ts descending: the destinations failing now come first
	// (the most recent outage on top), then the healthy ones (no
	// failure_ts).
	v, err := a.call(http.MethodGet, "/_synapse/admin/v1/federation/destinations?limit=1000&order_by=failure_ts&dir=b", nil)
	if err != nil {
		return err
	}
	return a.show(v, func(w io.Writer) {
		fmt.Fprintln(w, "DESTINATION\tFAILING SINCE\tRETRY IN\tLAST OK\tQUEUED EVENTS\tQUEUED EDUS")
		for _, d := range list(v["destinations"]) {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", str(d["destination"]), when(d["failure_ts"]), retryIn(d["retry_last_ts"], d["retry_interval"]),
				when(d["last_successful_stream_ordering"]), count(d["queued_pdus"]), count(d["queued_edus"]))
		}
		fmt.Fprintf(w, "%s destinations\n", str(v["total"]))
	})
}

// count is a number of the API's answer, 0 included ("-": not given).
func count(v any) string {
	if n, ok := v.(float64); ok {
		return fmt.Sprintf("%.0f", n)
	}
	return "-"
}

func when(v any) string {
	ms, ok := v.(float64)
	if !ok || ms <= 0 {
		return "-"
	}
	if ms < 1e11 { // a stream position, not a time
		return fmt.Sprintf("#%.0f", ms)
	}
	return time.UnixMilli(int64(ms)).UTC().Format(time.RFC3339)
}

func retryIn(last, interval any) string {
	l, ok1 := last.(float64)
	i, ok2 := interval.(float64)
	if !ok1 || !ok2 || i <= 0 {
		return "-"
	}
	d := time.Until(time.UnixMilli(int64(l + i))).Round(time.Second)
	if d <= 0 {
		return "now"
	}
	return d.String()
}

// reorder puts flags before positional arguments, so that
// "deactivate @u:x --erase" parses as the usage writes it.
func reorder(args []string) []string {
	var flags, rest []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			flags = append(flags, a)
		} else {
			rest = append(rest, a)
		}
	}
	return append(flags, rest...)
}

// readLine reads one line (a password) from r.
func readLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
