// Package clio is what ingot's two command lines (the workstation's cobra
// verbs and the device's flag verbs) share about output: results on
// stdout as text or --json, details on stderr with -v, and a progress
// line for long transfers. Progress is not logging: it goes to stderr
// and never with --json.
//
//	out := clio.Output{JSON: jsonFlag, Stdout: os.Stdout, Stderr: os.Stderr}
//	return out.Render(result, func(w io.Writer) { fmt.Fprintln(w, result.Version) })
package clio

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Output is where a verb's output goes, and in which form.
type Output struct {
	// JSON selects machine-readable results (--json).
	JSON bool
	// Verbose sends details to Stderr (-v).
	Verbose bool
	// Stdout receives results only; Stderr details and progress.
	Stdout, Stderr io.Writer
}

// Logger returns the logger for -v: text on Stderr, or a discarding one.
func (o *Output) Logger() *slog.Logger {
	if !o.Verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(o.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Render prints a result: indented JSON with --json, otherwise the text
// form that text writes.
func (o *Output) Render(v any, text func(w io.Writer)) error {
	if o.JSON {
		enc := json.NewEncoder(o.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(o.Stdout)
	return nil
}

// Progress prints a one-line progress report to stderr, redrawn with \r
// at most once per interval. A nil *Progress does nothing.
type Progress struct {
	w        io.Writer
	verb     string
	interval time.Duration
	start    time.Time
	last     time.Time
	printed  bool
}

// NewProgress returns a progress line for verb ("pull", "download"), or
// nil with --json, which keeps stderr quiet.
func (o *Output) NewProgress(verb string, interval time.Duration) *Progress {
	if o.JSON {
		return nil
	}
	return &Progress{w: o.Stderr, verb: verb, interval: interval, start: time.Now()}
}

// Func returns p.Update as a callback, or nil for a nil p.
func (p *Progress) Func() func(done, total int64) {
	if p == nil {
		return nil
	}
	return p.Update
}

// Update reports done of total bytes.
func (p *Progress) Update(done, total int64) {
	if p == nil {
		return
	}
	now := time.Now()
	if done < total && now.Sub(p.last) < p.interval {
		return
	}
	p.last = now
	pct := 100
	if total > 0 {
		pct = int(done * 100 / total)
	}
	rate := float64(done) / max(now.Sub(p.start).Seconds(), 0.001)
	fmt.Fprintf(p.w, "\r%s %10s / %-10s %3d%%  %s/s   ", p.verb, HumanBytes(done), HumanBytes(total), pct, HumanBytes(int64(rate)))
	p.printed = true
}

// Finish ends the progress line.
func (p *Progress) Finish() {
	if p != nil && p.printed {
		fmt.Fprintln(p.w)
	}
}

// HumanBytes formats n as "512 B", "1.5 KiB", "12.0 MiB".
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
