package vm

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

// runResult is findRun for tests: the output, exit status and end offset.
func runResult(text string, id int) (out string, code string, end int, ok bool) {
	loc, ok := findRun([]byte(text), id)
	if !ok {
		return "", "", 0, false
	}
	return text[loc[2]:loc[3]], text[loc[4]:loc[5]], loc[1], true
}

// consoleText cleans raw console bytes as the Machine does.
func consoleText(raw string) string {
	var c cleaner
	return string(c.clean(nil, []byte(raw)))
}

func TestRunLine(t *testing.T) {
	line := runLine(7, "ls /")
	want := "printf '@@INGOT:%s:%d@@\\n' S 7; command eval 'ls /'; printf '@@INGOT:%s:%d:%d@@\\n' E 7 $?\n"
	if line != want {
		t.Fatalf("runLine =\n%q\nwant\n%q", line, want)
	}
	// The echo of the typed line must not look like a marker.
	if _, _, _, ok := runResult(consoleText(line+line), 7); ok {
		t.Fatalf("the echo of %q matched as output", line)
	}
	if got := runLine(1, "echo 'a b' # c"); !strings.Contains(got, `eval 'echo '\''a b'\'' # c';`) {
		t.Errorf("quoting: %q", got)
	}
}

func TestFindRun(t *testing.T) {
	echo := "root@ingot:~# " + strings.TrimSuffix(runLine(3, "cat /etc/hostname"), "\n") + "\r\n"
	tests := []struct {
		name, raw string
		id        int
		ok        bool
		out, code string
		rest      string // what follows the match
	}{
		{
			name: "typical",
			raw:  echo + "@@INGOT:S:3@@\r\ningot\r\n@@INGOT:E:3:0@@\r\nroot@ingot:~# ",
			id:   3, ok: true, out: "ingot\n", code: "0", rest: "root@ingot:~# ",
		},
		{
			name: "no output, failure",
			raw:  echo + "@@INGOT:S:3@@\r\n@@INGOT:E:3:127@@\r\n",
			id:   3, ok: true, out: "", code: "127",
		},
		{
			name: "output without final newline, colors",
			raw:  echo + "@@INGOT:S:3@@\r\n\x1b[1;32mok\x1b[0m\r\nno newline@@INGOT:E:3:1@@\r\n# ",
			id:   3, ok: true, out: "ok\nno newline", code: "1", rest: "# ",
		},
		{
			name: "marker split by escape sequence",
			raw:  "@@INGOT:S:3@@\r\nx\r\n@@IN\x1b[0mGOT:E:3:2@@",
			id:   3, ok: true, out: "x\n", code: "2",
		},
		{
			name: "echo only",
			raw:  echo,
			id:   3,
		},
		{
			name: "start only",
			raw:  echo + "@@INGOT:S:3@@\r\nlong output...\r\n",
			id:   3,
		},
		{
			name: "end marker incomplete",
			raw:  echo + "@@INGOT:S:3@@\r\nx\r\n@@INGOT:E:3:1",
			id:   3,
		},
		{
			name: "end marker without status",
			raw:  echo + "@@INGOT:S:3@@\r\nx\r\n@@INGOT:E:3:@@\r\n",
			id:   3,
		},
		{
			name: "other command's markers",
			raw:  "@@INGOT:S:31@@\r\nx\r\n@@INGOT:E:31:0@@\r\n@@INGOT:S:13@@\r\n@@INGOT:E:13:0@@\r\n",
			id:   3,
		},
		{
			name: "id 1 is not id 12",
			raw:  "@@INGOT:S:1@@\r\none\r\n@@INGOT:E:12:5@@\r\n@@INGOT:E:1:4@@\r\n",
			id:   1, ok: true, out: "one\n@@INGOT:E:12:5@@\n", code: "4",
		},
		{
			name: "kernel message inside output",
			raw:  "@@INGOT:S:3@@\r\na\r\n[   12.345678] random: crng init done\r\nb\r\n@@INGOT:E:3:0@@\r\n",
			id:   3, ok: true, out: "a\n[   12.345678] random: crng init done\nb\n", code: "0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := consoleText(tt.raw)
			out, code, end, ok := runResult(text, tt.id)
			if ok != tt.ok {
				t.Fatalf("found = %v, want %v in %q", ok, tt.ok, text)
			}
			if !ok {
				return
			}
			if out != tt.out || code != tt.code {
				t.Errorf("got output %q status %s, want %q status %s", out, code, tt.out, tt.code)
			}
			if rest := text[end:]; rest != tt.rest {
				t.Errorf("rest after match %q, want %q", rest, tt.rest)
			}
		})
	}
}

func TestCleaner(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain\r\ntext\n", "plain\ntext\n"},
		{"\x1b[2J\x1b[01;01HBdsDxe: x\r\n", "BdsDxe: x\n"},
		{"\x1b[=3h\x1b[1m\x1b[33m\x1b[40mShell> \x1b[0m", "Shell> "},
		{"\x1b]0;title\x07after", "after"},
		{"\x1b]0;title\x1b\\after", "after"},
		{"\x1b(Bcharset \x1b=keypad\x1b>", "charset keypad"},
		{"nul\x00 bell\x07 bs\b del\x7f tab\t", "nul bell bs del tab\t"},
		{"utf-8: ✓ ü", "utf-8: ✓ ü"},
		{"broken \x1b[12\nline", "broken \nline"},
	}
	for _, tt := range tests {
		if got := consoleText(tt.in); got != tt.want {
			t.Errorf("clean(%q) = %q, want %q", tt.in, got, tt.want)
		}
		// Fed one byte at a time, the result is the same.
		var c cleaner
		var got []byte
		for i := range len(tt.in) {
			got = c.clean(got, []byte{tt.in[i]})
		}
		if !bytes.Equal(got, []byte(tt.want)) {
			t.Errorf("bytewise clean(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLineWriter(t *testing.T) {
	var lines []string
	w := LineWriter(func(s string) { lines = append(lines, s) })
	for _, chunk := range []string{"one\r", "\ntw", "o \x1b[1", "mbold\x1b[0m\r\n", "\r\n", "partial"} {
		if n, err := w.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	want := []string{"one", "two bold", ""}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Fatalf("lines = %q, want %q", lines, want)
	}
}

// feed appends console text to a Machine that has no process, as
// readConsole does.
func feed(m *Machine, s string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.text = append(m.text, s...)
	m.notifyLocked()
}

func TestWaitAcrossChunks(t *testing.T) {
	m := &Machine{changed: make(chan struct{}), running: true}
	ctx := t.Context()
	go func() {
		for _, chunk := range []string{"noise ab", "c", "d-", "x", "yz tail\nline2 ", "abcd again"} {
			time.Sleep(30 * time.Millisecond)
			feed(m, chunk)
		}
	}()
	if got, err := m.WaitFor(ctx, "abcd", 5*time.Second); err != nil || got != "abcd" {
		t.Fatalf("WaitFor(abcd) = %q, %v", got, err)
	}
	sub, err := m.WaitForRegexp(ctx, regexp.MustCompile(`-(\w+) tail\n(line\d)`), 5*time.Second)
	if err != nil || sub[1] != "xyz" || sub[2] != "line2" {
		t.Fatalf("WaitForRegexp = %q, %v", sub, err)
	}
	if _, err := m.WaitFor(ctx, "abcd", 5*time.Second); err != nil {
		t.Fatalf("second abcd: %v", err)
	}
	if _, err := m.WaitFor(ctx, "abcd", 100*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third abcd: %v, want a timeout", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.WaitFor(cctx, "never", 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled WaitFor: %v", err)
	}
}
