// Package bootcheck decides statically which version a disk boots: it does
// what the firmware, systemd-boot and ingot-init do with the disk, as a pure
// function of its bytes.
//
//   - the GPT, primary or (when that is damaged) backup;
//   - the ESP's FAT file system, loader.conf's default and the UKIs in
//     EFI/Linux (Boot Loader Specification type #2), sorted as systemd-boot
//     sorts them: entries with no tries left last, then by sort key and
//     newest version, then by name; the LoaderEntryDefault EFI variable
//     (an input) wins over loader.conf;
//   - the picked UKI must be whole: signed by a db certificate when the
//     machine has one (Options.DB), else with a valid PE checksum; a UKI
//     that does not load leaves systemd-boot in its menu;
//   - ingot-init's steps: the usr and usr-verity partitions that usrhash=
//     names by PARTUUID, the usr-verity-sig signature (Options.VerityCerts),
//     the dm-verity tree recomputed over the data and compared with the
//     one on disk and with usrhash, and a usable root partition (named
//     "root" with an ext4 or LUKS2 superblock, "_root-setup" or absent with
//     room to make one, which ingot-init redoes);
//   - when the picked entry fails in the initrd and has boot tries left,
//     systemd-boot counts them down and starts the next entry: a fallback.
//     A failing entry without tries is a boot loop.
//
// A Checker memoises the expensive parts (UKI signatures and checksums,
// verity trees) by a fingerprint of the disk region they read, when the
// disk implements Fingerprinter (crashstate.View does), so thousands of
// crash states that share most of their bytes are cheap.
//
//	c := bootcheck.New(bootcheck.Options{})
//	res := c.Check(disk, size)
//	if res.Err != nil { ... } // why nothing boots
//	fmt.Println(res.Version, res.Slot)
package bootcheck

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/ingot-linux/ingot/layout"
)

// Options are what the machine brings besides the disk.
type Options struct {
	// DB are the certificates of the Secure Boot db: a UKI must be signed
	// by one of them. Nil means an unsigned machine, which needs each UKI
	// whole by its PE checksum.
	DB []*x509.Certificate
	// VerityCerts, when set, are the certificates of the verity key the
	// initrd carries: the booted slot's usr-verity-sig must sign usrhash.
	VerityCerts []*x509.Certificate
	// LoaderEntryDefault is the LoaderEntryDefault EFI variable ("" when
	// unset).
	LoaderEntryDefault string
}

// Fingerprinter is a disk that can name the content of a region: equal
// fingerprints mean equal bytes.
type Fingerprinter interface {
	Fingerprint(off, n int64) [32]byte
}

// Checker checks disks; it remembers results of expensive checks. It is
// not safe for concurrent use.
type Checker struct {
	opts   Options
	ukis   map[[32]byte]*ukiInfo
	verity map[[32]byte]error
	// Stats counts memo hits and misses.
	Stats Stats
}

// Stats counts the work a Checker did and saved.
type Stats struct {
	UKIChecks, UKIMemoHits       int
	VerityChecks, VerityMemoHits int
}

// New returns a Checker.
func New(o Options) *Checker {
	return &Checker{opts: o, ukis: map[[32]byte]*ukiInfo{}, verity: map[[32]byte]error{}}
}

// Attempt is one entry systemd-boot started and what became of it.
type Attempt struct {
	Entry Entry
	// Err is why the boot failed; nil for the entry that booted.
	Err error
}

// Result says what the disk boots.
type Result struct {
	// Version (IMAGE_VERSION), Slot ("a" or "b"), UsrHash (hex) and File
	// (under EFI/Linux) of the entry that boots; empty when none does.
	Version, Slot, UsrHash, File string
	// Attempts are the entries started, in order; more than one means a
	// fallback after failed boots.
	Attempts []Attempt
	// Entries are the ESP's entries in systemd-boot's order.
	Entries []Entry
	// Err says why no version boots; nil when one does.
	Err error
}

// Fallbacks is the number of entries that failed before one booted.
func (r *Result) Fallbacks() int { return max(0, len(r.Attempts)-1) }

// String sums the result up in one line.
func (r *Result) String() string {
	if r.Err != nil {
		return "no boot: " + r.Err.Error()
	}
	s := fmt.Sprintf("boots %s (slot %s, %s)", r.Version, r.Slot, r.File)
	for _, a := range r.Attempts[:len(r.Attempts)-1] {
		s += fmt.Sprintf("; after %s failed: %v", a.Entry.File, a.Err)
	}
	return s
}

// Error is a failed step of the boot.
type Error struct {
	// Step names what the firmware, the boot loader or ingot-init was
	// doing, as initrd's plan names its steps.
	Step string
	Err  error
}

func (e *Error) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ErrBootLoop says an entry without boot tries left fails every boot.
var ErrBootLoop = errors.New("boot loop")

// ErrMenu says systemd-boot could not start the picked entry and waits in
// its menu.
var ErrMenu = errors.New("systemd-boot stops in its menu")

func stepErr(step string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Step: step, Err: err}
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// Check returns what the size-byte disk boots.
func (c *Checker) Check(disk io.ReaderAt, size int64) *Result {
	res := &Result{}
	d, err := openDisk(disk, size)
	if err != nil {
		res.Err = err
		return res
	}
	esp, err := c.readESP(d)
	if err != nil {
		res.Err = err
		return res
	}
	res.Entries = append([]Entry(nil), esp.entries...)
	c.boot(d, esp, res)
	return res
}

// boot plays systemd-boot's selection and boot counting until an entry
// boots, one cannot start, or one fails for good.
func (c *Checker) boot(d *disk, esp *espState, res *Result) {
	entries := append([]Entry(nil), esp.entries...)
	for range len(entries) + 1 {
		i := selectDefault(entries, c.opts.LoaderEntryDefault, esp.confDefault)
		if i < 0 {
			res.Err = stepErr("select boot entry", noEntry(esp.skipped))
			return
		}
		e := entries[i]
		info := c.loadUKI(d, esp, e)
		if info.err != nil {
			res.Attempts = append(res.Attempts, Attempt{Entry: e, Err: info.err})
			res.Err = stepErr("start "+e.File, fmt.Errorf("%w: %w", ErrMenu, info.err))
			return
		}
		slot, err := c.initrd(d, info)
		res.Attempts = append(res.Attempts, Attempt{Entry: e, Err: err})
		if err == nil {
			res.Version, res.Slot, res.UsrHash, res.File = info.version, slot, fmt.Sprintf("%x", info.usrHash), e.File
			return
		}
		if e.TriesLeft <= 0 {
			res.Err = fmt.Errorf("%w: %s has no boot tries to count down and fails every boot: %w", ErrBootLoop, e.File, err)
			return
		}
		entries[i].TriesDone += entries[i].TriesLeft
		entries[i].TriesLeft = 0
		sortEntries(entries)
	}
	res.Err = fmt.Errorf("%w: every entry failed", ErrBootLoop)
}

// noEntry says why systemd-boot has nothing to start, on one line.
func noEntry(skipped []error) error {
	msg := "no bootable UKI in " + layout.UKIDir
	for _, err := range skipped {
		msg += "; " + err.Error()
	}
	return errors.New(msg)
}
