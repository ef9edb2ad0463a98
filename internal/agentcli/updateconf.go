package agentcli

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"time"
)

// updateConf is /etc/ingot/update.conf: KEY=value lines, # comments.
//
//	CHANNEL=oci://registry.example.com/fleet/ingot:stable
//	WINDOW=02:00-04:00
type updateConf struct {
	Channel string
	// Window is "HH:MM-HH:MM" in UTC; empty means any time. A window may
	// wrap past midnight (22:00-02:00).
	Window     string
	start, end int // minutes after midnight
}

func readUpdateConf(path string) (*updateConf, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read update channel configuration: %w", err)
	}
	defer f.Close()
	c := &updateConf{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want KEY=value", path, n)
		}
		switch v = strings.Trim(strings.TrimSpace(v), `"'`); strings.TrimSpace(k) {
		case "CHANNEL":
			c.Channel = v
		case "WINDOW":
			if err := c.setWindow(v); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, n, err)
			}
		default:
			return nil, fmt.Errorf("%s:%d: unknown key %q (CHANNEL, WINDOW)", path, n, k)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *updateConf) setWindow(v string) error {
	a, b, ok := strings.Cut(v, "-")
	s, err1 := time.Parse("15:04", a)
	e, err2 := time.Parse("15:04", b)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("WINDOW=%q: want HH:MM-HH:MM (UTC)", v)
	}
	c.Window, c.start, c.end = v, s.Hour()*60+s.Minute(), e.Hour()*60+e.Minute()
	return nil
}

// InWindow reports whether t (taken as UTC) falls in the window.
func (c *updateConf) InWindow(t time.Time) bool {
	if c.Window == "" {
		return true
	}
	m := t.UTC().Hour()*60 + t.UTC().Minute()
	if c.start <= c.end {
		return m >= c.start && m < c.end
	}
	return m >= c.start || m < c.end
}
