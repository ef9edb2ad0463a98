package machineconfig

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// table is a colon-separated account file (/etc/passwd, /etc/group,
// /etc/shadow) as lines of fields, in order.
type table struct {
	rows   [][]string
	fields int
}

func readTable(path string, fields int) (*table, error) {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	t := &table{fields: fields}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, ":")
		for len(f) < fields {
			f = append(f, "")
		}
		t.rows = append(t.rows, f)
	}
	return t, nil
}

func (t *table) find(name string) []string {
	for _, r := range t.rows {
		if r[0] == name {
			return r
		}
	}
	return nil
}

// set replaces the row named row[0] or appends it.
func (t *table) set(row []string) {
	for i, r := range t.rows {
		if r[0] == row[0] {
			t.rows[i] = row
			return
		}
	}
	t.rows = append(t.rows, row)
}

func (t *table) String() string {
	var b strings.Builder
	for _, r := range t.rows {
		b.WriteString(strings.Join(r, ":") + "\n")
	}
	return b.String()
}

// accounts are the machine's passwd, group and shadow being rendered.
type accounts struct {
	passwd, group, shadow *table
}

func readAccounts(etc string) (*accounts, error) {
	a := &accounts{}
	var err error
	if a.passwd, err = readTable(filepath.Join(etc, "passwd"), 7); err != nil {
		return nil, err
	}
	if a.group, err = readTable(filepath.Join(etc, "group"), 4); err != nil {
		return nil, err
	}
	if a.shadow, err = readTable(filepath.Join(etc, "shadow"), 9); err != nil {
		return nil, err
	}
	return a, nil
}

// owner resolves "USER[:GROUP]" ("" is root:root); a USER without GROUP
// is in the user's primary group.
func (a *accounts) owner(s string) (uid, gid int, err error) {
	if s == "" {
		return 0, 0, nil
	}
	user, group, hasGroup := strings.Cut(s, ":")
	p := a.passwd.find(user)
	if p == nil {
		return 0, 0, fmt.Errorf("no user %s", user)
	}
	uid, _ = strconv.Atoi(p[2])
	gid, _ = strconv.Atoi(p[3])
	if hasGroup {
		g := a.group.find(group)
		if g == nil {
			return 0, 0, fmt.Errorf("no group %s", group)
		}
		gid, _ = strconv.Atoi(g[2])
	}
	return uid, gid, nil
}

// freeID is the lowest id from 1000 used by no user and no group.
func (a *accounts) freeID() int {
	used := map[string]bool{}
	for _, r := range a.passwd.rows {
		used[r[2]] = true
	}
	for _, r := range a.group.rows {
		used[r[2]] = true
	}
	id := 1000
	for used[strconv.Itoa(id)] {
		id++
	}
	return id
}

func (r *renderer) users(c *Config) error {
	a, err := readAccounts(filepath.Join(r.root, "etc"))
	if err != nil {
		return fmt.Errorf("read accounts: %w", err)
	}
	r.acct = a
	if len(c.Users) == 0 {
		return nil
	}
	for i, u := range c.Users {
		if err := r.user(fmt.Sprintf("users[%d]", i), u); err != nil {
			return err
		}
	}
	r.file("users", "/etc/passwd", 0o644, a.passwd.String())
	r.file("users", "/etc/group", 0o644, a.group.String())
	r.add(Entry{From: "users", Path: "/etc/shadow", Mode: 0o600, Data: []byte(a.shadow.String()), Secret: true})
	return nil
}

// user adds or updates one account and renders its home and keys.
func (r *renderer) user(from string, u User) error {
	a := r.acct
	uid, gid := r.ids(u)
	home := "/home/" + u.Name
	if uid == 0 {
		home = "/root"
	}
	shell := u.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	gecos := ""
	if old := a.passwd.find(u.Name); old != nil {
		gecos, home = old[4], old[5]
	}
	a.passwd.set([]string{u.Name, "x", strconv.Itoa(uid), strconv.Itoa(gid), gecos, home, shell})
	if a.group.find(u.Name) == nil && uid != 0 {
		a.group.set([]string{u.Name, "x", strconv.Itoa(gid), ""})
	}
	a.shadow.set(shadowRow(u, a.shadow.find(u.Name)))
	for _, g := range u.Groups {
		row := a.group.find(g)
		if row == nil {
			return fmt.Errorf("%s: group %s of user %s does not exist", from, g, u.Name)
		}
		members := strings.FieldsFunc(row[3], func(r rune) bool { return r == ',' })
		if !contains(members, u.Name) {
			row[3] = strings.Join(append(members, u.Name), ",")
		}
	}
	if !strings.HasPrefix(home, "/home/") && home != "/root" {
		return fmt.Errorf("%s: home %s of user %s is not under /home or /root", from, home, u.Name)
	}
	r.add(Entry{From: from, Path: home, Mode: fs.ModeDir | 0o700, UID: uid, GID: gid})
	if len(u.SSHAuthorizedKeys) > 0 {
		r.add(Entry{From: from, Path: home + "/.ssh", Mode: fs.ModeDir | 0o700, UID: uid, GID: gid})
		keys := strings.Join(u.SSHAuthorizedKeys, "\n") + "\n"
		r.add(Entry{From: from, Path: home + "/.ssh/authorized_keys", Mode: 0o600, UID: uid, GID: gid, Data: []byte(keys)})
	}
	return nil
}

// ids are an existing user's ids, else the configured uid, else the next
// free one; the primary group has the uid's number.
func (r *renderer) ids(u User) (uid, gid int) {
	if old := r.acct.passwd.find(u.Name); old != nil {
		uid, _ = strconv.Atoi(old[2])
		gid, _ = strconv.Atoi(old[3])
		return uid, gid
	}
	if u.UID != nil {
		return *u.UID, *u.UID
	}
	id := r.acct.freeID()
	return id, id
}

// shadowRow is u's /etc/shadow line: its hash, "*" (no password login,
// keys still work) without one, "!" in front when locked.
func shadowRow(u User, old []string) []string {
	row := []string{u.Name, "*", "", "", "", "", "", "", ""}
	if old != nil {
		row = append([]string(nil), old...)
	}
	if u.PasswordHash != "" {
		row[1] = u.PasswordHash
	} else if old == nil || !strings.HasPrefix(strings.TrimLeft(old[1], "!"), "$") {
		row[1] = "*"
	}
	row[1] = strings.TrimLeft(row[1], "!")
	if u.Locked {
		row[1] = "!" + row[1]
	}
	return row
}
