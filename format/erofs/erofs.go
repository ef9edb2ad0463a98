// Package erofs writes EROFS images, plain or compressed with LZ4 (high
// compression) or zstd, in pure Go.
//
// go-erofs, which ingot uses for plain images, has no compressed writer;
// this package writes the whole image itself: 4 KiB blocks, compact or
// extended inodes, inline xattrs (POSIX ACLs under their own prefix
// index), hard links as shared inodes, tails of plain files and small
// directories inline after their inode, and compressed files as
// "full" lcluster indexes over big pclusters. Identical files share their
// data blocks. Files are compressed on every core; the bytes depend only on
// the input.
//
//	err := erofs.Write(out, files, erofs.Options{BuildTime: epoch,
//		Compression: erofs.Compression{Algorithm: erofs.LZ4HC}})
package erofs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
)

// Algorithm is a compression algorithm the kernel's EROFS reads.
type Algorithm uint8

const (
	// None writes every file plain.
	None Algorithm = iota
	// LZ4HC is LZ4 in high-compression mode; every kernel with EROFS
	// compression (CONFIG_EROFS_FS_ZIP) reads it.
	LZ4HC
	// Zstd needs Linux 6.10 or later with CONFIG_EROFS_FS_ZIP_ZSTD.
	Zstd
)

// Compression is an algorithm and its level (0: the algorithm's default).
type Compression struct {
	Algorithm Algorithm
	Level     int
}

// String returns the form ParseCompression reads.
func (c Compression) String() string {
	name := [...]string{"none", "lz4hc", "zstd"}[c.Algorithm]
	if c.Level != 0 {
		return name + ":" + strconv.Itoa(c.Level)
	}
	return name
}

// Level ranges of the compressors (pierrec/lz4's HC search depth 1–9,
// zstd's 1–22 as klauspost/compress maps them).
var levelRange = [...][2]int{None: {0, 0}, LZ4HC: {1, 9}, Zstd: {1, 22}}

// ParseCompression reads "none", "lz4hc" or "zstd", each optionally with
// ":LEVEL".
func ParseCompression(s string) (Compression, error) {
	name, lvl, hasLevel := strings.Cut(s, ":")
	var c Compression
	switch name {
	case "none":
	case "lz4hc":
		c.Algorithm = LZ4HC
	case "zstd":
		c.Algorithm = Zstd
	default:
		return c, fmt.Errorf("compression %q: want none, lz4hc or zstd, optionally with :LEVEL", s)
	}
	if !hasLevel {
		return c, nil
	}
	n, err := strconv.Atoi(lvl)
	r := levelRange[c.Algorithm]
	if err != nil || n < r[0] || n > r[1] || c.Algorithm == None {
		return c, fmt.Errorf("compression %q: level must be %d to %d for %s", s, r[0], r[1], name)
	}
	c.Level = n
	return c, nil
}

// File is one entry of the image.
type File struct {
	// Path is slash-separated, relative to the image's root, which is ".".
	// A file's parent directory comes before it in the list.
	Path string
	// Mode holds type and permission bits, with fs.ModeSetuid,
	// fs.ModeSetgid and fs.ModeSticky.
	Mode fs.FileMode
	// UID and GID own the file; above 65535 the inode is an extended one.
	UID, GID uint32
	// Mtime is seconds since the epoch.
	Mtime int64
	// Xattrs maps full names ("security.capability",
	// "system.posix_acl_access") to values; only the namespaces EROFS
	// keeps are accepted.
	Xattrs map[string]string
	// LinkTarget is a symlink's target.
	LinkTarget string
	// Rdev is a device's number in the kernel's 32-bit encoding.
	Rdev uint32
	// Size and Open give a regular file's content.
	Size int64
	Open func() (io.ReadCloser, error)
	// HardLink, if set, makes this name another name of the regular file
	// at that path; the other fields are ignored.
	HardLink string
}

// Options configure Write.
type Options struct {
	// BuildTime is the superblock's time, the mtime of compact inodes.
	BuildTime int64
	// UUID is the superblock's volume UUID.
	UUID [16]byte
	// Compression is what regular files are compressed with.
	Compression Compression
	// Workers is how many files are compressed at once; 0 means one
	// per CPU.
	Workers int
}

// ErrInvalid marks input an EROFS image cannot hold.
var ErrInvalid = errors.New("invalid EROFS input")

const (
	blkBits  = 12
	blkSize  = 1 << blkBits
	sbOffset = 1024
	magic    = 0xE0F5E1E2
)
