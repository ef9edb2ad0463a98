package agentcli

import (
	"os"
	"testing"
	"time"
)

func TestUpdateConf(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := dir + "/update.conf"
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := readUpdateConf(write("# fleet\nCHANNEL=oci://10.0.0.1:5000/ingot:stable\nWINDOW=22:00-02:00\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Channel != "oci://10.0.0.1:5000/ingot:stable" {
		t.Errorf("channel %q", c.Channel)
	}
	at := func(h, m int) time.Time { return time.Date(2026, 1, 1, h, m, 0, 0, time.UTC) }
	for _, tc := range []struct {
		t    time.Time
		want bool
	}{{at(23, 0), true}, {at(1, 59), true}, {at(2, 0), false}, {at(12, 0), false}} {
		if got := c.InWindow(tc.t); got != tc.want {
			t.Errorf("InWindow(%v) = %v", tc.t, got)
		}
	}
	for _, bad := range []string{"WINDOW=2-4\n", "CHANNEL\n", "COLOR=blue\n"} {
		if _, err := readUpdateConf(write(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
