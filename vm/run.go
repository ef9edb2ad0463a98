package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Markers that Run prints around a command's output. The typed command
// line builds them with printf from pieces, so its echo never matches.
const (
	markerPrefix = "@@INGOT:"
	markerSuffix = "@@"
)

// maxRunLine keeps Run's typed text below the 4096-byte limit of a Linux
// terminal's input buffer in canonical mode.
const maxRunLine = 3500

// runLine returns the line Run types for command number id. The command
// runs through "command eval", so that whatever it is (a trailing comment, a
// background job, a syntax error) the end marker still runs and reports its
// status.
func runLine(id int, cmd string) string {
	quoted := "'" + strings.ReplaceAll(cmd, "'", `'\''`) + "'"
	return fmt.Sprintf("printf '%s%%s:%%d%s\\n' S %d; command eval %s; printf '%s%%s:%%d:%%d%s\\n' E %d $?\n",
		markerPrefix, markerSuffix, id, quoted, markerPrefix, markerSuffix, id)
}

// findRun locates the output of command number id in console text. It
// returns index pairs as FindSubmatchIndex does: the whole span from the
// start marker to past the end marker (and its newline, if there), the
// output, and the exit status digits.
func findRun(text []byte, id int) ([]int, bool) {
	start := []byte(markerPrefix + "S:" + strconv.Itoa(id) + markerSuffix + "\n")
	i := bytes.Index(text, start)
	if i < 0 {
		return nil, false
	}
	outStart := i + len(start)
	endTag := []byte(markerPrefix + "E:" + strconv.Itoa(id) + ":")
	j := bytes.Index(text[outStart:], endTag)
	if j < 0 {
		return nil, false
	}
	outEnd := outStart + j
	codeStart := outEnd + len(endTag)
	codeEnd := codeStart
	for codeEnd < len(text) && text[codeEnd] >= '0' && text[codeEnd] <= '9' {
		codeEnd++
	}
	if codeEnd == codeStart || !bytes.HasPrefix(text[codeEnd:], []byte(markerSuffix)) {
		// The marker is incomplete (more output to come) or garbled;
		// keep waiting, a later end marker may be whole.
		return nil, false
	}
	end := codeEnd + len(markerSuffix)
	if end < len(text) && text[end] == '\n' {
		end++
	}
	return []int{i, end, outStart, outEnd, codeStart, codeEnd}, true
}

// Run types cmd into the root shell on the console and returns what it
// printed (stdout and stderr as the console shows them, CRs and terminal
// escapes removed) and its exit status. The shell (any POSIX shell: bash,
// dash, busybox sh) must be at a prompt; cmd runs in it through "command
// eval", so cd and variables persist, cmd may span lines, and even a syntax
// error in it reports a status (2). A command that reads the console would
// read what is typed next; redirect its input from /dev/null.
// Kernel messages printed to the console meanwhile end up in the output
// (lower the console log level with dmesg -n 1 to avoid that). The cursor
// moves past the command's output. On error the exit status is -1; a
// timeout of 0 waits as long as ctx allows.
func (m *Machine) Run(ctx context.Context, cmd string, timeout time.Duration) (string, int, error) {
	if strings.Contains(cmd, "\r") {
		return "", -1, errors.New("run: command has a carriage return")
	}
	m.runMu.Lock()
	defer m.runMu.Unlock()
	m.mu.Lock()
	m.runSeq++
	id := m.runSeq
	m.mu.Unlock()

	line := runLine(id, cmd)
	if len(line) > maxRunLine {
		return "", -1, fmt.Errorf("run: command line of %d bytes is longer than %d", len(line), maxRunLine)
	}
	if err := m.Send(line); err != nil {
		return "", -1, fmt.Errorf("run %q: %w", cmd, err)
	}
	sub, err := m.wait(ctx, timeout, fmt.Sprintf("the output of %q", cmd), func(b []byte, _ int) ([]int, bool) {
		return findRun(b, id)
	})
	if err != nil {
		return "", -1, fmt.Errorf("run: %w", err)
	}
	code, err := strconv.Atoi(sub[2])
	if err != nil {
		return sub[1], -1, fmt.Errorf("run %q: exit status %q: %w", cmd, sub[2], err)
	}
	return sub[1], code, nil
}
