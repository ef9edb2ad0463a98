package store

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ingot-linux/ingot/internal/fileutil"
)

// Manifest describes a store entry: what it was built from and every file
// it holds. Field names are stable (other stages and tools read them).
type Manifest struct {
	// Name and Version of the package.
	Name    string `json:"name"`
	Version string `json:"version"`
	// Licence is the recipe's SPDX expression.
	Licence string `json:"licence"`
	// Key is the build key (the entry's directory name).
	Key string `json:"key"`
	// Sources are the upstream files the build used.
	Sources []Source `json:"sources"`
	// Inputs are the store entries visible to the build.
	Inputs []Input `json:"inputs"`
	// Deps are the runtime dependencies.
	Deps []string `json:"deps,omitempty"`
	// Toolchain is the toolchain identity's digest.
	Toolchain string `json:"toolchain"`
	// Epoch is SOURCE_DATE_EPOCH; every mtime in the entry equals it.
	Epoch int64 `json:"epoch"`
	// Outputs lists the files of each output tree (runtime, dev, doc).
	Outputs map[string][]FileEntry `json:"outputs"`
}

// Source is one upstream file of a build.
type Source struct {
	URL    string `json:"url"`
	SHA256 string `json:"sha256"`
}

// Input is a store entry a build saw.
type Input struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// FileEntry is one file of an output tree. Owners are always 0:0.
type FileEntry struct {
	// Path is relative to the output tree, slash-separated.
	Path string `json:"path"`
	// Type is "dir", "file", "symlink" or "hardlink".
	Type string `json:"type"`
	// Mode is the permission bits (with setuid, setgid, sticky).
	Mode uint32 `json:"mode"`
	// Size and SHA256 are set for files.
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// Link is a symlink's target, or for a hard link the path it shares
	// its inode with.
	Link string `json:"link,omitempty"`
}

// Normalize rewrites the tree at dir for reproducibility — owners 0:0
// (when permitted: an unprivileged build keeps the caller's owner on disk,
// and the manifest says 0), no group or world write bits, every mtime =
// epoch — and returns its files in path order. Sockets, devices and FIFOs
// are refused: builds must not install them.
func Normalize(dir string, epoch int64) ([]FileEntry, error) {
	var entries []FileEntry
	inodes := map[uint64]string{}
	canChown := os.Geteuid() == 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := FileEntry{Path: rel, Mode: uint32(fi.Mode().Perm()) | specialBits(fi.Mode())}
		switch {
		case fi.IsDir():
			e.Type = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			e.Type, e.Mode = "symlink", 0o777
			if e.Link, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if first, ok := inodes[st.Ino]; ok && st.Nlink > 1 {
				e.Type, e.Link = "hardlink", first
				break
			}
			if st.Nlink > 1 {
				inodes[st.Ino] = rel
			}
			e.Type, e.Size = "file", fi.Size()
			if e.SHA256, err = fileutil.SHA256(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: %s files are not allowed in packages", rel, strings.TrimPrefix(fi.Mode().Type().String(), "-"))
		}
		if e.Type != "symlink" && e.Mode&0o022 != 0 {
			e.Mode &^= 0o022
			if err := os.Chmod(p, fs.FileMode(e.Mode&0o777)|modeSpecial(e.Mode)); err != nil {
				return err
			}
		}
		if canChown && (st.Uid != 0 || st.Gid != 0) {
			if err := os.Lchown(p, 0, 0); err != nil {
				return err
			}
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("normalize %s: %w", dir, err)
	}
	// mtimes last, deepest first, so setting them does not disturb parents.
	ts := []unix.Timespec{unix.NsecToTimespec(epoch * int64(time.Second)), unix.NsecToTimespec(epoch * int64(time.Second))}
	for i := len(entries) - 1; i >= 0; i-- {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dir, entries[i].Path), ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return nil, fmt.Errorf("normalize %s: %w", entries[i].Path, err)
		}
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dir, ts, 0); err != nil {
		return nil, fmt.Errorf("normalize %s: %w", dir, err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Path < entries[j].Path })
	return entries, nil
}

func specialBits(m fs.FileMode) uint32 {
	var b uint32
	if m&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}

func modeSpecial(m uint32) fs.FileMode {
	var f fs.FileMode
	if m&0o4000 != 0 {
		f |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		f |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		f |= fs.ModeSticky
	}
	return f
}
