package machineconfig

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// unitDirs are where a unit to enable is looked for, in systemd's order
// of precedence.
var unitDirs = []string{"/etc/systemd/system", "/usr/lib/systemd/system"}

func (r *renderer) units(c *Config) error {
	for i, u := range c.Units {
		from := fmt.Sprintf("units[%d]", i)
		dir := unitDirs[0]
		if u.Mask {
			r.add(Entry{From: from, Path: dir + "/" + u.Name, Mode: fs.ModeSymlink | 0o777, Link: "/dev/null"})
		}
		if u.Content != "" {
			r.file(from, dir+"/"+u.Name, 0o644, u.Content)
		}
		for _, d := range u.DropIns {
			r.file(from, dir+"/"+u.Name+".d/"+d.Name, 0o644, d.Content)
		}
		if u.Enabled == nil {
			continue
		}
		if err := r.enable(from, u, *u.Enabled); err != nil {
			return err
		}
	}
	return nil
}

// enable links the unit into the targets its [Install] section names
// (on), or removes such links (off), as systemctl enable/disable would.
func (r *renderer) enable(from string, u Unit, on bool) error {
	if !on {
		links, _ := filepath.Glob(filepath.Join(r.root, unitDirs[0], "*.*s", u.Name))
		for _, l := range links {
			if d := filepath.Base(filepath.Dir(l)); strings.HasSuffix(d, ".wants") || strings.HasSuffix(d, ".requires") {
				r.add(Entry{From: from, Path: unitDirs[0] + "/" + d + "/" + u.Name, Remove: true})
			}
		}
		return nil
	}
	content, at := u.Content, unitDirs[0]+"/"+u.Name
	if content == "" {
		var err error
		if content, at, err = r.findUnit(u.Name); err != nil {
			return fmt.Errorf("%s: enable %s: %w", from, u.Name, err)
		}
	}
	install := parseInstall(content)
	if len(install) == 0 {
		return fmt.Errorf("%s: enable %s: it has no [Install] section with WantedBy=, RequiredBy= or Alias=", from, u.Name)
	}
	for _, in := range install {
		p := unitDirs[0] + "/" + in.target + in.dirSuffix + "/" + u.Name
		if in.dirSuffix == "" {
			p = unitDirs[0] + "/" + in.target // an alias
		}
		r.add(Entry{From: from, Path: p, Mode: fs.ModeSymlink | 0o777, Link: at})
	}
	return nil
}

func (r *renderer) findUnit(name string) (content, at string, err error) {
	for _, d := range unitDirs {
		b, err := os.ReadFile(filepath.Join(r.root, d, name))
		if err == nil {
			return string(b), d + "/" + name, nil
		}
	}
	return "", "", fmt.Errorf("no unit %s in %s", name, strings.Join(unitDirs, " or "))
}

// installLink is one link an [Install] section asks for.
type installLink struct{ target, dirSuffix string }

// parseInstall reads WantedBy=, RequiredBy= and Alias= of a unit's
// [Install] section.
func parseInstall(unit string) []installLink {
	var links []installLink
	section := ""
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if section != "[Install]" || !ok {
			continue
		}
		suffix, known := map[string]string{"WantedBy": ".wants", "RequiredBy": ".requires", "Alias": ""}[strings.TrimSpace(k)]
		if !known {
			continue
		}
		for _, t := range strings.Fields(v) {
			if !strings.ContainsAny(t, "/\x00") {
				links = append(links, installLink{t, suffix})
			}
		}
	}
	return links
}
