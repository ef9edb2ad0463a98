package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"time"
)

// ErrExited is returned (wrapped) by WaitFor, WaitForRegexp and Run when
// QEMU exits before the awaited output arrives.
var ErrExited = errors.New("qemu exited")

// cleaner removes carriage returns, other control characters but newline
// and tab, and terminal escape sequences from console output. It keeps
// state across calls, so sequences split between reads are removed too.
type cleaner struct {
	state int
}

const (
	stNormal = iota
	stEsc    // after ESC
	stCSI    // in ESC [ ... final
	stString // in ESC ] / P / X / ^ / _ ... BEL or ESC \
	stStrEsc // ESC inside a string sequence
	stSkip1  // one more byte to drop (ESC ( B and the like)
)

// clean appends the printable part of src to dst.
func (c *cleaner) clean(dst, src []byte) []byte {
	for _, b := range src {
		switch c.state {
		case stNormal:
			switch {
			case b == 0x1b:
				c.state = stEsc
			case b == '\n' || b == '\t' || (b >= 0x20 && b != 0x7f):
				dst = append(dst, b)
			}
		case stEsc:
			switch b {
			case '[':
				c.state = stCSI
			case ']', 'P', 'X', '^', '_':
				c.state = stString
			case '(', ')', '*', '+', '-', '.', '/', '#', '%', ' ':
				c.state = stSkip1
			default:
				c.state = stNormal
			}
		case stCSI:
			switch {
			case b >= 0x40 && b <= 0x7e:
				c.state = stNormal
			case b < 0x20:
				// Not a well-formed sequence: give up on it.
				c.state = stNormal
				if b == '\n' || b == '\t' {
					dst = append(dst, b)
				}
			}
		case stString:
			switch b {
			case 0x07:
				c.state = stNormal
			case 0x1b:
				c.state = stStrEsc
			}
		case stStrEsc:
			c.state = stNormal
		case stSkip1:
			c.state = stNormal
		}
	}
	return dst
}

// WaitFor waits until the literal substr appears in the console output after
// the cursor, moves the cursor past it and returns it. The cursor starts at
// the beginning and follows the last match, so output that arrived before
// this call but after the previous match counts: a shell prompt printed
// after a Run is still ahead of the cursor (use SkipOutput, or wait for text
// only a boot prints, after a reboot). The output it scans has CRs and
// terminal escapes removed (see Log). A timeout of 0 waits
// as long as ctx allows. The error names the awaited text and ends with the
// last lines of the console; it wraps ErrExited if QEMU exits first and
// context.DeadlineExceeded on timeout.
func (m *Machine) WaitFor(ctx context.Context, substr string, timeout time.Duration) (string, error) {
	pat := []byte(substr)
	match, err := m.wait(ctx, timeout, fmt.Sprintf("%q", substr), func(b []byte, seen int) ([]int, bool) {
		from := max(seen-len(pat)+1, 0)
		i := bytes.Index(b[from:], pat)
		if i < 0 {
			return nil, false
		}
		return []int{from + i, from + i + len(pat)}, true
	})
	if err != nil {
		return "", err
	}
	return match[0], nil
}

// WaitForRegexp is WaitFor for a regular expression. It returns the match
// and its submatches, as FindStringSubmatch does.
func (m *Machine) WaitForRegexp(ctx context.Context, re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	return m.wait(ctx, timeout, "/"+re.String()+"/", func(b []byte, _ int) ([]int, bool) {
		loc := re.FindSubmatchIndex(b)
		return loc, loc != nil
	})
}

// scanInterval is the least time between two scans of the console by one
// waiter: output often arrives a few bytes at a time, and a regular
// expression is matched against everything after the cursor.
const scanInterval = 20 * time.Millisecond

// wait scans the output after the cursor with find until it matches. find
// gets the text after the cursor and the length of its prefix that earlier
// calls saw without a match (a literal search need not look there again),
// and returns submatch index pairs relative to the text.
func (m *Machine) wait(ctx context.Context, timeout time.Duration, what string, find func(text []byte, seen int) ([]int, bool)) ([]string, error) {
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	fail := func(err error) ([]string, error) { return nil, m.waitErr("waiting for "+what, err) }
	timedOut := func() ([]string, error) {
		return fail(fmt.Errorf("timeout after %v: %w", timeout, context.DeadlineExceeded))
	}
	var pause *time.Timer
	seenFrom, seenTo := -1, 0 // absolute offsets of the text already scanned
	for {
		m.mu.Lock()
		if m.cursor != seenFrom {
			seenFrom, seenTo = m.cursor, m.cursor
		}
		text := m.text[m.cursor:]
		if loc, ok := find(text, seenTo-m.cursor); ok {
			sub := make([]string, len(loc)/2)
			for i := range sub {
				if loc[2*i] >= 0 {
					sub[i] = string(text[loc[2*i]:loc[2*i+1]])
				}
			}
			m.cursor += loc[1]
			m.mu.Unlock()
			return sub, nil
		}
		seenTo = len(m.text)
		changed, running := m.changed, m.running
		m.mu.Unlock()
		scanned := time.Now()

		if !running {
			return fail(fmt.Errorf("%w: %v", ErrExited, m.exitErr()))
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-expired:
			return timedOut()
		}
		if d := scanInterval - time.Since(scanned); d > 0 {
			if pause == nil {
				pause = time.NewTimer(d)
				defer pause.Stop()
			} else {
				pause.Reset(d)
			}
			select {
			case <-pause.C:
			case <-ctx.Done():
				return fail(ctx.Err())
			case <-expired:
				return timedOut()
			}
		}
	}
}

// tailBytes is how much of the console an error message quotes.
const tailBytes = 3000

// waitErr wraps err with what and the end of the console output.
func (m *Machine) waitErr(what string, err error) error {
	return fmt.Errorf("%s: %w\n--- console (last %d bytes) ---\n%s\n--- end of console ---",
		what, err, tailBytes, m.Tail(tailBytes))
}

// Log returns all console output so far, across reboots and restarts, with
// carriage returns, other control characters and terminal escape sequences
// removed. It is the text that WaitFor scans and that is written to
// LogPath.
func (m *Machine) Log() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return string(m.text)
}

// Tail returns the last n bytes of Log.
func (m *Machine) Tail(n int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.text
	if len(t) > n {
		t = t[len(t)-n:]
	}
	return string(t)
}

// Cursor returns the offset in Log after which WaitFor and Run look.
func (m *Machine) Cursor() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cursor
}

// SetCursor moves the cursor to offset pos in Log, clamped to the output
// so far. SetCursor(0) makes WaitFor search all output again.
func (m *Machine) SetCursor(pos int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cursor = min(max(pos, 0), len(m.text))
}

// ResetCursor moves the cursor to the start of the output.
func (m *Machine) ResetCursor() { m.SetCursor(0) }

// SkipOutput moves the cursor to the end of the output so far, so that
// WaitFor only sees what arrives later (for example after a reboot
// command).
func (m *Machine) SkipOutput() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cursor = len(m.text)
}

// Console returns a reader of the cleaned console output (as in Log) from
// its start. Read blocks until there is more output, and returns io.EOF once
// QEMU has exited and everything has been read, or after Close. Each call
// returns an independent reader, unaffected by the cursor.
func (m *Machine) Console() io.Reader {
	return &consoleReader{m: m}
}

type consoleReader struct {
	m   *Machine
	off int
}

func (r *consoleReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		r.m.mu.Lock()
		if r.off < len(r.m.text) {
			n := copy(p, r.m.text[r.off:])
			r.off += n
			r.m.mu.Unlock()
			return n, nil
		}
		changed, done := r.m.changed, !r.m.running || r.m.closed
		r.m.mu.Unlock()
		if done {
			return 0, io.EOF
		}
		<-changed
	}
}

// LineWriter returns a writer for Config.Output that cleans the console
// output as Log does and calls fn with each complete line, without its
// newline; for example LineWriter(func(s string) { t.Log(s) }) puts the
// console in a test's log. A last line without a newline is not passed on.
// The writer is not safe for concurrent use; a Machine writes from one
// goroutine.
func LineWriter(fn func(line string)) io.Writer {
	return &lineWriter{fn: fn}
}

type lineWriter struct {
	fn  func(string)
	c   cleaner
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = w.c.clean(w.buf, p)
	rest := w.buf
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		w.fn(string(rest[:i]))
		rest = rest[i+1:]
	}
	w.buf = append(w.buf[:0], rest...)
	return len(p), nil
}

// arrival records that the console text up to end had come by at.
type arrival struct {
	end int
	at  time.Time
}

// ArrivedAt returns when the byte at offset off of Log came from the guest
// (as read from QEMU's output: a boot's phases can be timed from its
// console lines after the fact, without racing the waits), and false when
// it has not come yet.
func (m *Machine) ArrivedAt(off int) (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := sort.Search(len(m.arrived), func(i int) bool { return m.arrived[i].end > off })
	if off < 0 || i == len(m.arrived) {
		return time.Time{}, false
	}
	return m.arrived[i].at, true
}

// Started returns when the current QEMU process was started (by Start or
// the last Restart): the zero of a boot's timeline.
func (m *Machine) Started() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.started
}
