package agentcli

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/ingot-linux/ingot/agent"
	"github.com/ingot-linux/ingot/artifact"
	"github.com/ingot-linux/ingot/oci"
)

const updateLong = `Install the update artifact SOURCE (a directory made by ingot image or
ingot pull) into the slot the booted UKI does not use, then put its UKI on the
ESP with three boot tries. Every file's sha256 and the verity root hash are
checked against the manifest and the usrhash inside the new UKI first.

SOURCE is oci://registry/repo:tag (or @sha256:…), an https:// URL of an
artifact directory, or a local directory. With
--channel it comes from /etc/ingot/update.conf (CHANNEL=oci://…), and the
update runs only inside its WINDOW (e.g. WINDOW=02:00-04:00, UTC); this is
what ingot-update.timer runs when it is enabled.

A version older than the running one is refused unless --allow-downgrade;
then the running entry is marked as ingot rollback marks it, so the older
version is the newest entry with tries left and boots next, and the running
one comes back if it fails its three tries. Before anything is downloaded, the sizes the manifest declares are
checked against the slot's partitions, the ESP and the free space.

From a registry that holds chunk indexes (ingot push writes them), only the
chunks that neither slot's partitions nor the ESP hold are downloaded, each
checked against its sha256 id before use; --check then also reports the
bytes the update would download.

Installed extensions move with the update: for each, the build for the new
version is fetched (the same repository with the new version as tag, or
NAME_VERSION.raw beside the file it was added from), verified, and staged
for the new version before the slot is written; without one the update is
refused, unless --drop-extension NAME. A rollback boots the old version
with its own set.`

// updateFlags are ingot update's flags.
type updateFlags struct {
	reboot, check, channel bool
	allowDowngrade         bool
	confPath               string
	dropExtensions         stringList
	maxRange               int64
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func newUpdate(e *env) *verb {
	var f updateFlags
	v := newVerb(e, "update", "update [SOURCE]", "Install a new version into the other A/B slot (on the device)")
	v.long, v.maxArgs = updateLong, 1
	v.flags.BoolVar(&f.reboot, "reboot", false, "reboot when done")
	v.flags.BoolVar(&f.check, "check", false, "only report whether SOURCE has a different version than the one running")
	v.flags.BoolVar(&f.channel, "channel", false, "follow the channel configured in --config, inside its window")
	v.flags.BoolVar(&f.allowDowngrade, "allow-downgrade", false, "install a version older than the running one and boot it next (the running entry is marked as a rollback marks it)")
	v.flags.Var(&f.dropExtensions, "drop-extension", "update without installed extension `NAME` when the new version has no build of it (repeatable)")
	v.flags.StringVar(&f.confPath, "config", "/etc/ingot/update.conf", "update channel configuration")
	v.flags.Int64Var(&f.maxRange, "max-range", 8<<20, "the most bytes one ranged request for chunks asks for (for proxies that cap ranges; 1: a request per chunk)")
	v.run = func(ctx context.Context, args []string) error {
		var source string
		if len(args) == 1 {
			source = args[0]
		}
		return update(ctx, e, &f, source)
	}
	return v
}

// update is ingot update: pick the source (the channel's, inside its
// window), check its version, install it, report, reboot if asked.
func update(ctx context.Context, e *env, f *updateFlags, source string) error {
	if f.channel {
		conf, err := readUpdateConf(f.confPath)
		if err != nil {
			return err
		}
		if source == "" {
			source = conf.Channel
		}
		if !conf.InWindow(time.Now()) {
			return e.Render(map[string]any{"skipped": "outside the update window " + conf.Window}, func(w io.Writer) {
				fmt.Fprintf(w, "outside the update window %s: nothing to do\n", conf.Window)
			})
		}
	}
	if source == "" {
		return fmt.Errorf("no update source: give SOURCE, or --channel with CHANNEL= in %s", f.confPath)
	}
	a := agent.New(agent.Config{Logger: e.Logger(), Progress: func(step string) {
		fmt.Fprintf(e.Stderr, "ingot: update: %s\n", step)
	}})
	avail, err := checkSource(ctx, a, source)
	if err != nil {
		return err
	}
	if !avail.Available && !f.check && !f.channel {
		return fmt.Errorf("update to %s: %w", avail.Version, agent.ErrSameVersion)
	}
	if f.check && avail.Available && strings.HasPrefix(source, "oci://") {
		if err := planDownload(ctx, a, source, avail); err != nil {
			return err
		}
	}
	if f.check || !avail.Available {
		return e.Render(avail, avail.print)
	}
	return install(ctx, e, a, source, f)
}

// install fetches source and installs it into the other slot.
func install(ctx context.Context, e *env, a *agent.Agent, source string, f *updateFlags) error {
	limits, err := a.UpdateLimits()
	if err != nil {
		return err
	}
	seeds, err := seedOptions(a)
	if err != nil {
		return err
	}
	src, cleanup, err := pullSource(ctx, e, source, limits, append(seeds, oci.WithMaxRange(f.maxRange)))
	if err != nil {
		return err
	}
	defer cleanup()
	art, err := artifact.Open(src)
	if err != nil {
		return err
	}
	version := art.Manifest.Version
	unstage, err := stageExtensions(ctx, e, a, version, f.dropExtensions)
	if err != nil {
		return err
	}
	res, err := a.Update(ctx, src, agent.WithAllowDowngrade(f.allowDowngrade))
	if err != nil {
		unstage()
		return err
	}
	err = e.Render(res, func(w io.Writer) {
		fmt.Fprintf(w, "installed %s into slot %s (was %q); next boot starts it: %s\n", res.Version, res.Slot, res.FromVersion, res.NextBoot)
	})
	return rebootIf(f.reboot, err)
}

// rebootIf reboots when asked and nothing failed.
func rebootIf(reboot bool, err error) error {
	if err != nil || !reboot {
		return err
	}
	if err := exec.Command("systemctl", "reboot").Run(); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}

// Availability says whether a source holds another version than the
// running one.
type Availability struct {
	Available bool   `json:"available"`
	Version   string `json:"version"`
	UsrHash   string `json:"usrhash"`
	Running   string `json:"running"`
	// Download is what the update would download (--check of an
	// oci:// source that has another version; 0 when up to date), Total
	// the size of its files.
	Download int64 `json:"downloadBytes"`
	Total    int64 `json:"totalBytes,omitempty"`
}

func (a *Availability) print(w io.Writer) {
	if a.Available {
		fmt.Fprintf(w, "update available: %s (running %s)", a.Version, a.Running)
		if a.Total > 0 {
			fmt.Fprintf(w, "; downloads %d of its %d bytes", a.Download, a.Total)
		}
		fmt.Fprintln(w)
	} else {
		fmt.Fprintf(w, "up to date: %s\n", a.Running)
	}
}

// checkSource reads the manifest only (for OCI: no layers are downloaded).
func checkSource(ctx context.Context, a *agent.Agent, source string) (*Availability, error) {
	st, err := a.Running()
	if err != nil {
		return nil, err
	}
	var m *artifact.Manifest
	if strings.HasPrefix(source, "https://") {
		return &Availability{Available: true, Running: st.Version}, nil // known after the download
	}
	if strings.HasPrefix(source, "oci://") {
		info, err := oci.Inspect(ctx, source)
		if err != nil {
			return nil, err
		}
		m = info.Manifest
	} else {
		art, err := artifact.Open(source)
		if err != nil {
			return nil, err
		}
		m = art.Manifest
	}
	return &Availability{Available: m.UsrHash != st.UsrHash, Version: m.Version, UsrHash: m.UsrHash, Running: st.Version}, nil
}

// updateSeeds returns the local data a delta update reuses: both slots'
// partitions and the ESP.
func updateSeeds(a *agent.Agent) ([]oci.Seed, error) {
	as, err := a.UpdateSeeds()
	if err != nil {
		return nil, err
	}
	seeds := make([]oci.Seed, len(as))
	for i, s := range as {
		seeds[i] = oci.Seed{Name: s.Name, Path: s.Path, Offset: s.Offset, Size: s.Size}
	}
	return seeds, nil
}

// seedOptions are the pull options that make it a delta pull.
func seedOptions(a *agent.Agent) ([]oci.Option, error) {
	seeds, err := updateSeeds(a)
	if err != nil {
		return nil, err
	}
	return []oci.Option{oci.WithSeeds(seeds...)}, nil
}

// planDownload fills in how many bytes installing source would download:
// the chunks neither the local partitions nor the pull cache hold.
func planDownload(ctx context.Context, a *agent.Agent, source string, avail *Availability) error {
	seeds, err := updateSeeds(a)
	if err != nil {
		return err
	}
	p, err := oci.PlanPull(ctx, source, append(pullCache(), oci.WithSeeds(seeds...))...)
	if err != nil {
		return err
	}
	avail.Download, avail.Total = p.Download, p.Total
	return nil
}
