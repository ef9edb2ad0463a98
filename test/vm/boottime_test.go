//go:build vm

package vm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/ingottest"
	"github.com/ingot-linux/ingot/vm"
)

// previousRelease is the commit whose images BenchmarkBootTime boots
// beside this tree's: main when the boot-time work (issue 16) started.
// INGOT_BENCH_PREVIOUS names another commit of this clone.
const previousRelease = "7b0e7bbb3a6456d3693f0b7fa7d34194d10a7df6"

// bootSubject is one image BenchmarkBootTime boots.
type bootSubject struct {
	name, release string // "musl base" or "Debian"; "previous" or "this tree"
	disk          string
	diskBytes     int64
}

// bootFigures is one boot's timeline. Guest times are from the kernel's
// start (CLOCK_MONOTONIC in the guest); host times from QEMU's start.
type bootFigures struct {
	total       time.Duration // host: QEMU start → marker line on the console
	initStart   time.Duration // guest: kernel → ingot-init (0: not logged)
	switchRoot  time.Duration // guest: kernel → switch root
	systemd     time.Duration // guest: kernel → systemd (userspace)
	generators  time.Duration // guest: systemd's generators, start to finish
	unitsLoaded time.Duration // guest: kernel → systemd has loaded its units
	sysinit     time.Duration // guest: kernel → sysinit.target
	complete    time.Duration // guest: kernel → boot-complete.target
	marker      time.Duration // guest: kernel → ingot-boot-marker.service started
	markerDone  time.Duration // guest: kernel → ingot-boot-marker.service done (blessed)
	steps       string        // ingot-init's timing line, or its slow-step lines
	analyze     string        // systemd-analyze time
	chain       string        // systemd-analyze critical-chain of the marker
	blame       string        // the slowest units
	failed      string        // failed units, if any
	switchGuess bool          // switchRoot is systemd's start (an old ingot-init)
}

// BenchmarkBootTime (issue 16) boots the musl base and the Debian fixture,
// each imaged by this tree and by the previous release (previousRelease,
// its ingot built from `git archive` of that commit, its musl base built
// from its own recipes into the same test store), and prints for the
// first boot and a later boot (power off, start again on the same disk):
// QEMU start → kernel (firmware and loader), kernel → ingot-init, each
// ingot-init step, → switch root, → systemd, → boot-complete.target, →
// boot marker, the marker's critical chain and the slowest units. Every
// machine runs in this one invocation, one at a time, so that the load of a
// shared machine weighs on both sides alike. INGOT_BENCH_BOOT=musl or
// =debian boots only that one (previous and this tree still side by side).
func BenchmarkBootTime(b *testing.B) {
	bin := binaries(b)
	prev := previousBinaries(b)
	out := b.TempDir()
	which := os.Getenv("INGOT_BENCH_BOOT") // "musl" or "debian": only that one
	var subjects []bootSubject
	if which != "debian" {
		baseRootfs(b) // this tree's base in the store
		subjects = append(subjects,
			imageWith(b, "musl base", "previous", prev, filepath.Join(out, "prev-base"), "--store", testStore(b)),
			imageWith(b, "musl base", "this tree", bin, filepath.Join(out, "base"), "--store", testStore(b)))
	}
	if which != "musl" {
		debian := ingottest.DebianRootfs(b, repoRoot)
		subjects = append(subjects,
			imageWith(b, "Debian", "previous", prev, filepath.Join(out, "prev-debian"), "--rootfs", debian),
			imageWith(b, "Debian", "this tree", bin, filepath.Join(out, "debian"), "--rootfs", debian))
	}
	bootAll(b, subjects, func(s bootSubject, boot string) (string, string) {
		metric := metricName(s.name) + "-" + boot
		if s.release == "previous" {
			metric = "prev-" + metric
		}
		return s.name + ", " + s.release + ", " + boot + " boot", metric
	})
}

// bootAll boots every subject twice (bootTwice) b.N times, prints each
// boot's timeline under the title name gives it and reports its QEMU
// start → marker and ingot-init times as metrics named from name's
// second result.
func bootAll(b *testing.B, subjects []bootSubject, name func(s bootSubject, boot string) (title, metric string)) {
	b.Helper()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, s := range subjects {
			first, later := bootTwice(b, s)
			for _, f := range []struct {
				boot string
				f    bootFigures
			}{{"first", first}, {"later", later}} {
				title, metric := name(s, f.boot)
				// On standard output, not b.Log: a benchmark's log is cut
				// to a few lines without -v.
				fmt.Println(f.f.report(title))
				b.ReportMetric(f.f.total.Seconds(), metric+"-s")
				b.ReportMetric((f.f.switchRoot - f.f.initStart).Seconds(), metric+"-init-s")
			}
		}
	}
}

// metricName is an image's name as a metric's first word ("musl",
// "debian").
func metricName(name string) string {
	if name == "Debian" {
		return "debian"
	}
	return "musl"
}

// previousBinaries builds ingot, ingot-init and ingot-agent of the previous
// release from `git archive` of its commit (no worktree left behind).
func previousBinaries(b *testing.B) string {
	b.Helper()
	commit := previousRelease
	if c := os.Getenv("INGOT_BENCH_PREVIOUS"); c != "" {
		commit = c
	}
	dir := b.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		b.Fatal(err)
	}
	archive := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", repoRoot, commit, src)
	if out, err := archive.CombinedOutput(); err != nil {
		b.Fatalf("the previous release %s is not in this clone (fetch main's history, or set INGOT_BENCH_PREVIOUS to a commit that is): %v\n%s", commit, err, out)
	}
	bin := filepath.Join(dir, "bin")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", bin+"/", "./cmd/ingot", "./cmd/ingot-init", "./cmd/ingot-agent")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build the previous release %s: %v\n%s", commit, err, out)
	}
	return bin
}

// imageWith runs `ingot image` of the ingot in bin (its ingot-init and
// agent beside it) with the source flags, as version 1.0.0 with autologin.
// A --store image builds that ingot's own recipes into the store first.
func imageWith(b *testing.B, name, release, bin, out string, source ...string) bootSubject {
	b.Helper()
	env := withoutEnv(os.Environ(), "SOURCE_DATE_EPOCH")
	if source[0] == "--rootfs" {
		env = append(env, fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch))
	} else {
		build := exec.Command(filepath.Join(bin, "ingot"), "build", "--store", source[1])
		build.Env = env
		if o, err := build.CombinedOutput(); err != nil {
			b.Fatalf("%s, %s: ingot build: %v\n%s", name, release, err, o)
		}
	}
	argv := append([]string{"image", "--version", "1.0.0", "--output", out, "--autologin", "--json"}, source...)
	cmd := exec.Command(filepath.Join(bin, "ingot"), argv...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		b.Fatalf("%s, %s: ingot %s: %v\n%s", name, release, strings.Join(argv, " "), err, stderr.String())
	}
	var res baseResult
	if err := json.Unmarshal(stdout, &res); err != nil {
		b.Fatalf("ingot image --json: %v\n%s", err, stdout)
	}
	return bootSubject{name: name, release: release, disk: res.Disk, diskBytes: res.DiskBytes}
}

// bootTwice boots a fresh machine (the first boot creates the root
// partition), powers it off, starts it again on the same disk and NVRAM,
// and returns both boots' figures.
func bootTwice(b *testing.B, s bootSubject) (first, later bootFigures) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	logPath := filepath.Join(os.TempDir(), "ingot-vm-BenchmarkBootTime-"+strings.ReplaceAll(s.name+"-"+s.release, " ", "-")+".log")
	m, err := vm.Start(ctx, vm.Config{Image: s.disk, DiskSizeBytes: s.diskBytes + 1<<30, LogFile: logPath})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	defer func() {
		if b.Failed() {
			b.Logf("%s, %s console (full log in %s):\n%s", s.name, s.release, logPath, m.Tail(8000))
		}
	}()
	first = measureBoot(ctx, b, m, 0)
	if err := m.Send("systemctl poweroff\n"); err != nil {
		b.Fatal(err)
	}
	select {
	case <-m.Done():
	case <-time.After(5 * time.Minute):
		b.Fatalf("%s, %s: the machine did not power off", s.name, s.release)
	}
	m.SkipOutput()
	from := m.Cursor()
	if err := m.Restart(ctx); err != nil {
		b.Fatal(err)
	}
	later = measureBoot(ctx, b, m, from)
	return first, later
}

var (
	timingRE   = regexp.MustCompile(`ingot-init: timing: started (\S+) after the kernel; .*; switch root (\S+) after the kernel`)
	runInitRE  = regexp.MustCompile(`\[\s*([0-9.]+)\] Run /init as init process`)
	slowStepRE = regexp.MustCompile(`ingot-init: .* took \S+`)
)

// measureBoot waits for the boot marker of the boot whose console output
// starts at offset from, then reads its timeline from the console and the
// guest's systemd.
func measureBoot(ctx context.Context, b *testing.B, m *vm.Machine, from int) bootFigures {
	b.Helper()
	m.SetCursor(from)
	booted(ctx, b, m)
	var f bootFigures
	log := m.Log()
	at := func(i int) time.Duration {
		t, _ := m.ArrivedAt(i)
		return t.Sub(m.Started())
	}
	if loc := markerRE.FindStringIndex(log[from:]); loc != nil {
		f.total = at(from + loc[0])
	}
	if sub := timingRE.FindStringSubmatch(log[from:]); sub != nil {
		f.initStart, f.switchRoot = parseDuration(sub[1]), parseDuration(sub[2])
		f.steps = strings.TrimSpace(sub[0])
	} else {
		f.steps = strings.Join(slowStepRE.FindAllString(log[from:], -1), "\n")
	}

	prop := func(unit, p string) time.Duration {
		us, err := strconv.ParseInt(run(ctx, b, m, "systemctl --no-pager show -P "+p+" "+unit), 10, 64)
		if err != nil {
			b.Fatalf("%s %s: %v", unit, p, err)
		}
		return time.Duration(us) * time.Microsecond
	}
	f.systemd = prop("", "UserspaceTimestampMonotonic")
	f.generators = prop("", "GeneratorsFinishTimestampMonotonic") - prop("", "GeneratorsStartTimestampMonotonic")
	f.unitsLoaded = prop("", "UnitsLoadFinishTimestampMonotonic")
	f.sysinit = prop("sysinit.target", "ActiveEnterTimestampMonotonic")
	f.complete = prop("boot-complete.target", "ActiveEnterTimestampMonotonic")
	// The marker line is printed as `ingot boot-marker` starts (the
	// blessing follows it): its start is the guest's side of the line.
	f.marker = prop("ingot-boot-marker.service", "ExecMainStartTimestampMonotonic")
	f.markerDone = prop("ingot-boot-marker.service", "ActiveEnterTimestampMonotonic")
	if f.switchRoot == 0 {
		// An ingot-init without the timing line: the kernel's own line
		// says when it started, and it ends where systemd starts.
		if sub := runInitRE.FindStringSubmatch(log[from:]); sub != nil {
			sec, _ := strconv.ParseFloat(sub[1], 64)
			f.initStart = time.Duration(sec * float64(time.Second))
		}
		f.switchRoot = f.systemd
		f.switchGuess = true
	}
	// systemd-analyze time answers once the boot has finished (the
	// marker may come before the last units).
	run(ctx, b, m, "timeout 90 systemctl is-system-running --wait >/dev/null 2>&1 || true")
	f.analyze = run(ctx, b, m, "SYSTEMD_PAGER=cat systemd-analyze time 2>&1 | head -n 1")
	f.chain = run(ctx, b, m, "systemd-analyze critical-chain --no-pager ingot-boot-marker.service 2>&1 | tail -n +3")
	f.blame = run(ctx, b, m, "systemd-analyze blame --no-pager 2>&1 | head -n 12")
	f.failed = run(ctx, b, m, "systemctl --no-pager --failed --no-legend --plain")
	return f
}

// parseDuration reads fmtDuration's "123ms" or "1.23s".
func parseDuration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

// report prints the figures of one boot.
func (f bootFigures) report(title string) string {
	s := func(d time.Duration) string { return fmt.Sprintf("%6.2fs", d.Seconds()) }
	var b strings.Builder
	fmt.Fprintf(&b, "== %s: QEMU start → marker %s\n", title, s(f.total))
	fmt.Fprintf(&b, "   firmware+loader (QEMU start → kernel)  %s\n", s(f.total-f.marker))
	fmt.Fprintf(&b, "   kernel → ingot-init                    %s\n", s(f.initStart))
	guess := ""
	if f.switchGuess {
		guess = " (to systemd's start: this ingot-init does not time itself)"
	}
	fmt.Fprintf(&b, "   ingot-init → switch root               %s%s\n", s(f.switchRoot-f.initStart), guess)
	fmt.Fprintf(&b, "   switch root → systemd                  %s\n", s(f.systemd-f.switchRoot))
	fmt.Fprintf(&b, "   systemd → boot-complete.target         %s\n", s(f.complete-f.systemd))
	fmt.Fprintf(&b, "     systemd → units loaded               %s (generators %s)\n", s(f.unitsLoaded-f.systemd), s(f.generators))
	fmt.Fprintf(&b, "     units loaded → sysinit.target        %s\n", s(f.sysinit-f.unitsLoaded))
	fmt.Fprintf(&b, "     sysinit.target → boot-complete       %s\n", s(f.complete-f.sysinit))
	fmt.Fprintf(&b, "   boot-complete.target → marker          %s (the marker service then takes %s)\n", s(f.marker-f.complete), s(f.markerDone-f.marker))
	fmt.Fprintf(&b, "   kernel → marker                        %s\n", s(f.marker))
	fmt.Fprintf(&b, "   %s\n", f.steps)
	fmt.Fprintf(&b, "   systemd-analyze: %s\n", f.analyze)
	fmt.Fprintf(&b, "   critical chain of the marker:\n%s\n", indent(f.chain))
	fmt.Fprintf(&b, "   slowest units:\n%s", indent(f.blame))
	if f.failed != "" {
		fmt.Fprintf(&b, "\n   FAILED UNITS:\n%s", indent(f.failed))
	}
	return b.String()
}

func indent(s string) string {
	return "     " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n     ")
}
