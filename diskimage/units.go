package diskimage

import (
	"bytes"
	"embed"
	"fmt"
	"strings"
	"text/template"
	"time"

	"github.com/ingot-linux/ingot/diskimage/rootfs"
)

// unitFS holds the systemd units and drop-ins ingot adds to every image,
// as files: units/ in the source tree. They are text/template templates;
// the only values they read are unitValues'.
//
//go:embed units
var unitFS embed.FS

// systemDir is where the image's systemd units live in the tree.
const systemDir = "usr/lib/systemd/system/"

// unitValues are the per-image values the unit templates read.
type unitValues struct {
	// BootDeadlineSeconds bounds a boot to boot-complete.target
	// (50-ingot-deadline.conf).
	BootDeadlineSeconds int
	// HealthChecks are the units boot-complete.target requires,
	// ingot-health.service first, separated by spaces
	// (60-ingot-health.conf).
	HealthChecks string
}

// unitFile is one file under systemDir made from a template in units/.
type unitFile struct{ path, template string }

// unitLink is one symlink under systemDir: an enablement or a mask.
type unitLink struct{ path, target string }

// unitSet is everything ingot adds under systemDir.
type unitSet struct {
	files  []unitFile
	links  []unitLink
	values unitValues
}

// ingotUnits lists ingot's units for an image whose boot must reach
// boot-complete.target within deadline and pass healthChecks (validated
// unit names; ingot-health.service is added), with autologin on the
// serial and container consoles if asked.
func ingotUnits(deadline time.Duration, healthChecks []string, autologin bool) unitSet {
	all := append([]string{"ingot-health.service"}, healthChecks...)
	s := unitSet{values: unitValues{BootDeadlineSeconds: int(deadline.Seconds()), HealthChecks: strings.Join(all, " ")}}
	// The boot marker tells the agent a boot got as far as
	// boot-complete.target: the boot is good.
	s.file("ingot-boot-marker.service", "ingot-boot-marker.service")
	s.link("multi-user.target.wants/ingot-boot-marker.service", "../ingot-boot-marker.service")
	// A boot that hangs before boot-complete.target is a failed boot:
	// reboot, so boot counting moves on (and falls back after three).
	s.file("boot-complete.target.d/50-ingot-deadline.conf", "50-ingot-deadline.conf")
	// boot-complete.target requires ingot's own health check and the
	// image's; a check that fails reboots the machine, a failed try.
	s.file("ingot-health.service", "ingot-health.service")
	for _, u := range all {
		s.file(u+".d/50-ingot-health.conf", "50-ingot-health.conf")
	}
	s.file("boot-complete.target.d/60-ingot-health.conf", "60-ingot-health.conf")
	// The booted system's half of the boot phases in PCR 11 (see
	// docs/trust.md): "sysinit" after sysinit.target and "ready" before
	// user sessions, "final" and "shutdown" on the way down, as
	// systemd-pcrphase's units measure them. ingot measures them itself
	// (ingot measure-phase, through /dev/tpmrm0 like ingot-init) and
	// masks systemd's units, so the sequence does not depend on whether
	// the image's systemd was built with TPM2 support or has its TPM2
	// libraries installed (Debian 12's does not), and nothing is measured
	// twice.
	s.link("systemd-pcrphase.service", "/dev/null")
	s.link("systemd-pcrphase-sysinit.service", "/dev/null")
	s.file("ingot-pcrphase-sysinit.service", "ingot-pcrphase-sysinit.service")
	s.file("ingot-pcrphase.service", "ingot-pcrphase.service")
	s.link("sysinit.target.wants/ingot-pcrphase-sysinit.service", "../ingot-pcrphase-sysinit.service")
	s.link("sysinit.target.wants/ingot-pcrphase.service", "../ingot-pcrphase.service")
	// Blessing is ingot's (ingot boot-marker → agent.Bless), which copies
	// the entry under its new name before removing the old one:
	// systemd-bless-boot renames in place, and on vfat a crash can leave
	// the renamed entry empty with the old one gone (TestCrashFirstBoot).
	s.link("systemd-bless-boot.service", "/dev/null")
	// Extensions: ingot-init verifies and mounts each sysext at
	// /run/extensions/NAME before systemd starts; systemd-sysext merges
	// them into /usr and /opt early (before sysinit.target).
	s.link("sysinit.target.wants/systemd-sysext.service", "../systemd-sysext.service")
	// Extensions a machine configuration names (extensions:) are added
	// once the network is up: ingot-init cannot reach a registry.
	s.file("ingot-config-extensions.service", "ingot-config-extensions.service")
	s.link("multi-user.target.wants/ingot-config-extensions.service", "../ingot-config-extensions.service")
	// The boot loader's random seed on the ESP is refreshed after the
	// boot is complete, not before sysinit.target as systemd orders it:
	// there it waits for the ESP's automount, and so for udev to announce
	// the ESP's device, on every boot's critical path (10.6 s under TCG).
	// systemd-boot refreshes the seed file itself on every boot; this
	// mixes in the booted kernel's entropy and sets the system token on
	// the first boot, which can wait (docs/boot.md).
	s.link("systemd-boot-random-seed.service", "/dev/null")
	s.file("ingot-boot-random-seed.service", "ingot-boot-random-seed.service")
	s.link("multi-user.target.wants/ingot-boot-random-seed.service", "../ingot-boot-random-seed.service")
	// A kernel without module support (the musl base's: every driver
	// built in) has no /proc/modules: modprobe@.service, which sockets
	// and mounts before sysinit.target pull in (configfs, fuse, drm),
	// then skips instead of running modprobe for nothing.
	s.file("modprobe@.service.d/50-ingot-modules.conf", "50-ingot-modules.conf")
	// udev rules from system credentials (SMBIOS or the hypervisor's
	// firmware, unsigned) would let whoever runs the machine run programs
	// as root; an ingot machine takes its configuration signed, from
	// ingot-init. The unit also held systemd-udevd's start, and with it
	// the coldplug, before sysinit.target (0.5-1.3 s under TCG).
	s.link("systemd-udev-load-credentials.service", "/dev/null")
	// ingot-init mounts the root and /usr with their final options before
	// systemd starts (the root read-write, /usr read-only and verified);
	// systemd-remount-fs, which the fstab generator pulls in before
	// local-fs.target, only remounted the root as it was (0.6-2.3 s under
	// TCG on the way to sysinit.target).
	s.link("systemd-remount-fs.service", "/dev/null")
	// The update channel: off until the owner enables the timer and
	// writes /etc/ingot/update.conf (CHANNEL=oci://…,
	// WINDOW=HH:MM-HH:MM).
	s.file("ingot-update.service", "ingot-update.service")
	s.file("ingot-update.timer", "ingot-update.timer")
	if autologin {
		s.file("serial-getty@.service.d/50-ingot-autologin.conf", "50-ingot-autologin.conf")
		s.file("console-getty.service.d/50-ingot-autologin.conf", "50-ingot-autologin.conf")
	}
	return s
}

func (s *unitSet) file(path, template string) { s.files = append(s.files, unitFile{path, template}) }
func (s *unitSet) link(path, target string)   { s.links = append(s.links, unitLink{path, target}) }

// put renders the set's files and writes them and its links into t.
func (s unitSet) put(t *rootfs.Tree, epoch int64) error {
	tmpl, err := template.New("units").Option("missingkey=error").ParseFS(unitFS, "units/*")
	if err != nil {
		return fmt.Errorf("parse unit templates: %w", err)
	}
	for _, f := range s.files {
		var b bytes.Buffer
		if err := tmpl.ExecuteTemplate(&b, f.template, s.values); err != nil {
			return fmt.Errorf("render unit %s: %w", f.path, err)
		}
		t.PutFile(systemDir+f.path, b.Bytes(), 0o644, epoch)
	}
	for _, l := range s.links {
		t.PutSymlink(systemDir+l.path, l.target, epoch)
	}
	return nil
}
