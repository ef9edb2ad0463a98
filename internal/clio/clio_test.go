package clio

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

func TestHumanBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1536, "1.5 KiB"}, {12 << 20, "12.0 MiB"}, {3 << 40, "3.0 TiB"}, {5 << 50, "5.0 PiB"}, {1 << 62, "4096.0 PiB"}} {
		if got := HumanBytes(tc.n); got != tc.want {
			t.Errorf("HumanBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestRender(t *testing.T) {
	var out bytes.Buffer
	o := Output{Stdout: &out, Stderr: io.Discard}
	v := struct {
		Version string `json:"version"`
	}{"1.0.0"}
	text := func(w io.Writer) { io.WriteString(w, "version 1.0.0\n") }
	if err := o.Render(v, text); err != nil || out.String() != "version 1.0.0\n" {
		t.Fatalf("text: %q, %v", out.String(), err)
	}
	out.Reset()
	o.JSON = true
	if err := o.Render(v, text); err != nil || out.String() != "{\n  \"version\": \"1.0.0\"\n}\n" {
		t.Fatalf("json: %q, %v", out.String(), err)
	}
}

func TestProgress(t *testing.T) {
	var errOut bytes.Buffer
	o := Output{Stderr: &errOut}
	p := o.NewProgress("pull", time.Hour)
	p.Update(1, 100)
	p.Update(2, 100) // within the interval: not drawn
	p.Update(100, 100)
	p.Finish()
	if n := strings.Count(errOut.String(), "\rpull"); n != 2 || !strings.HasSuffix(errOut.String(), "\n") || !strings.Contains(errOut.String(), "100%") {
		t.Fatalf("progress output %q: want 2 redraws ending in a newline", errOut.String())
	}
	o.JSON = true
	var nilP *Progress = o.NewProgress("pull", 0)
	nilP.Update(1, 2) // a nil progress does nothing
	nilP.Finish()
	if nilP.Func() != nil {
		t.Fatal("nil progress has a callback")
	}
}
