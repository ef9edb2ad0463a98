package agent

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/format/uki"
	"github.com/ingot-linux/ingot/internal/fileutil"
	"github.com/ingot-linux/ingot/layout"
)

// Entry is one UKI on the ESP.
type Entry struct {
	// File is the file name under EFI/Linux.
	File string `json:"file"`
	// Version is the image version the name carries.
	Version string `json:"version"`
	// TriesLeft and TriesDone are the boot counters in the name; TriesLeft
	// is -1 for a blessed entry (no counter).
	TriesLeft int `json:"triesLeft"`
	TriesDone int `json:"triesDone"`
	// UsrHash is the root hash the UKI's command line pins.
	UsrHash string `json:"usrhash"`
	// Booted is true for the UKI that booted this system.
	Booted bool `json:"booted"`
}

// Bad reports whether systemd-boot gave up on the entry (no tries left).
func (e Entry) Bad() bool { return e.TriesLeft == 0 }

// parseEntryName splits "ingot_1.2.0+2-1.efi" into version and counters.
func parseEntryName(name string) (Entry, bool) {
	base, ok := strings.CutSuffix(name, ".efi")
	if !ok {
		return Entry{}, false
	}
	rest, ok := strings.CutPrefix(base, layout.Name+"_")
	if !ok {
		return Entry{}, false
	}
	e := Entry{File: name, TriesLeft: -1}
	if i := strings.LastIndexByte(rest, '+'); i >= 0 {
		left, done, _ := strings.Cut(rest[i+1:], "-")
		l, err1 := strconv.Atoi(left)
		d := 0
		var err2 error
		if done != "" {
			d, err2 = strconv.Atoi(done)
		}
		if err1 != nil || err2 != nil || l < 0 || d < 0 {
			return Entry{}, false
		}
		e.TriesLeft, e.TriesDone = l, d
		rest = rest[:i]
	}
	if layout.CheckVersion(rest) != nil {
		return Entry{}, false
	}
	e.Version = rest
	return e, true
}

// listEntries reads the UKIs in espDir/EFI/Linux, newest version first, and
// marks the one whose usrhash is booted.
func listEntries(espDir string, booted string) ([]Entry, error) {
	dir := filepath.Join(espDir, layout.UKIDir)
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []Entry
	for _, n := range names {
		e, ok := parseEntryName(n.Name())
		if !ok {
			continue
		}
		if h, err := ukiUsrHash(filepath.Join(dir, n.Name())); err == nil {
			e.UsrHash = h
		}
		e.Booted = e.UsrHash != "" && e.UsrHash == booted
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return layout.CompareVersions(out[j].Version, out[i].Version) < 0 })
	return out, nil
}

func ukiUsrHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	img, err := uki.Open(f)
	if err != nil {
		return "", err
	}
	cmdline, err := img.Cmdline()
	if err != nil {
		return "", err
	}
	b, err := layout.ParseBoot(cmdline)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(b.UsrHash), nil
}

// installUKI writes data as EFI/Linux/name: into a temporary file, fsynced,
// then renamed, so the boot loader never sees a partial UKI.
func installUKI(espDir, name string, data []byte, written func()) error {
	dir := filepath.Join(espDir, layout.UKIDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".ingot-new.tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("write UKI to the ESP: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("sync UKI on the ESP: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if written != nil {
		written()
	}
	// Never over an existing UKI: that one may be what boots.
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, filepath.Join(dir, name), unix.RENAME_NOREPLACE); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename UKI into place as %s: %w", name, err)
	}
	return syncRenamed(dir, name)
}

// syncRenamed makes a rename in dir durable with the file whole under its
// new name. vfat writes a renamed file's new directory entry without its
// size and first cluster and fills them in only when the inode is written
// back, so fsyncing the directory alone can make an empty entry durable
// (found by the crash-state enumeration, TestCrashFirstBoot): the file is
// fsynced under its new name first, which writes the inode, then the
// directory.
func syncRenamed(dir, name string) error {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", name, err)
	}
	return fileutil.SyncDir(dir)
}

// renameEntry changes an entry's file name (blessing, marking bad)
// durably. A rename(2) on vfat can leave, after a crash, the new name as
// an empty file with the old one gone (see syncRenamed), so the entry is
// copied under its new name first — written, renamed into place and
// synced as an update installs a UKI — and the old name removed only
// then: a crash leaves the old entry, or both, never neither.
func renameEntry(espDir, from, to string) error {
	if from == to {
		return nil
	}
	dir := filepath.Join(espDir, layout.UKIDir)
	data, err := os.ReadFile(filepath.Join(dir, from))
	if err != nil {
		return err
	}
	if err := installUKI(espDir, to, data, nil); err != nil {
		return err
	}
	return removeEntry(espDir, from)
}

func removeEntry(espDir, name string) error {
	dir := filepath.Join(espDir, layout.UKIDir)
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		return err
	}
	return fileutil.SyncDir(dir)
}
