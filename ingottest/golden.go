package ingottest

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// SectorSize is the granularity of sparse goldens and of SectorDiff.
const SectorSize = 512

// sparseMagic is the first line of a sparse golden file.
const sparseMagic = "ingot sparse image v1"

// lineBytes is the number of bytes on one line of a sparse golden.
const lineBytes = 16

// EncodeSparse returns the sparse golden form of a disk image: a text file
// holding only the image's size and its non-zero 512-byte sectors, so a
// mostly empty 32 MiB image takes a few KiB and diffs readably in review.
//
// The format, line by line:
//
//	ingot sparse image v1
//	size <image size in bytes, decimal>
//	sector <index, decimal>            one block per non-zero sector, ascending
//	<off>  <up to 16 hex bytes>  |<ASCII>|
//
// A data line starts with its offset within the sector (three hex digits)
// and holds 16 bytes, fewer only at the end of an image whose size is not a
// multiple of 512; lines of zeros are left out, and so are sectors of
// zeros. The ASCII column (non-printable bytes as '.') is for people;
// DecodeSparse ignores it.
func EncodeSparse(img []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nsize %d\n", sparseMagic, len(img))
	for s := 0; s < len(img); s += SectorSize {
		sec := img[s:min(s+SectorSize, len(img))]
		if isZero(sec) {
			continue
		}
		fmt.Fprintf(&b, "sector %d\n", s/SectorSize)
		for o := 0; o < len(sec); o += lineBytes {
			line := sec[o:min(o+lineBytes, len(sec))]
			if isZero(line) {
				continue
			}
			fmt.Fprintf(&b, "%03x  %s\n", o, dumpLine(line))
		}
	}
	return b.Bytes()
}

// DecodeSparse turns the output of EncodeSparse back into the image.
func DecodeSparse(text []byte) ([]byte, error) {
	sc := bufio.NewScanner(bytes.NewReader(text))
	n := 0
	next := func() (string, bool) {
		ok := sc.Scan()
		n++
		return sc.Text(), ok
	}
	bad := func(format string, args ...any) ([]byte, error) {
		return nil, fmt.Errorf("sparse image line %d: %s", n, fmt.Sprintf(format, args...))
	}
	if l, _ := next(); l != sparseMagic {
		return bad("got %q, want %q", l, sparseMagic)
	}
	l, _ := next()
	size, err := strconv.ParseInt(strings.TrimPrefix(l, "size "), 10, 64)
	if !strings.HasPrefix(l, "size ") || err != nil || size < 0 || size > 1<<32 {
		return bad("got %q, want size and a byte count up to 4 GiB", l)
	}
	img := make([]byte, size)
	sector := int64(-1)
	for {
		l, ok := next()
		if !ok {
			break
		}
		if rest, ok := strings.CutPrefix(l, "sector "); ok {
			s, err := strconv.ParseInt(rest, 10, 64)
			if err != nil || s <= sector || s*SectorSize >= size {
				return bad("sector %q is not a new sector of the image in ascending order", rest)
			}
			sector = s
			continue
		}
		off, data, ok := strings.Cut(l, "  ")
		o, err := strconv.ParseUint(off, 16, 16)
		if !ok || err != nil || sector < 0 || o >= SectorSize || o%lineBytes != 0 {
			return bad("got %q, want a sector line or an offset in a sector and bytes", l)
		}
		data, _, _ = strings.Cut(data, "|")
		b, err := hex.DecodeString(strings.ReplaceAll(data, " ", ""))
		if err != nil || len(b) == 0 || len(b) > lineBytes {
			return bad("got %q, want 1 to %d hex bytes", data, lineBytes)
		}
		at := sector*SectorSize + int64(o)
		if at+int64(len(b)) > size {
			return bad("bytes at %#x run past the image size %d", at, size)
		}
		copy(img[at:], b)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read sparse image: %w", err)
	}
	return img, nil
}

// SectorDiff returns "" when want and got are equal, and otherwise a
// readable report: the sizes if they differ, how many 512-byte sectors
// differ, and for the first maxSectors of them the byte offset and the
// differing 16-byte lines (by image offset in hex) of want and got, with the differing bytes
// marked.
func SectorDiff(want, got []byte, maxSectors int) string {
	var b strings.Builder
	if len(want) != len(got) {
		fmt.Fprintf(&b, "size: want %d bytes, got %d\n", len(want), len(got))
	}
	var diff []int
	for s := 0; s < max(len(want), len(got)); s += SectorSize {
		if !bytes.Equal(sectorAt(want, s), sectorAt(got, s)) {
			diff = append(diff, s)
		}
	}
	if len(diff) == 0 {
		return b.String()
	}
	fmt.Fprintf(&b, "%d of %d sectors differ", len(diff), (max(len(want), len(got))+SectorSize-1)/SectorSize)
	if len(diff) > maxSectors {
		fmt.Fprintf(&b, "; the first %d:", maxSectors)
		diff = diff[:maxSectors]
	}
	b.WriteString("\n")
	for _, s := range diff {
		fmt.Fprintf(&b, "sector %d (offset %#x):\n", s/SectorSize, s)
		w, g := sectorAt(want, s), sectorAt(got, s)
		for o := 0; o < max(len(w), len(g)); o += lineBytes {
			wl, gl := lineAt(w, o), lineAt(g, o)
			if bytes.Equal(wl, gl) {
				continue
			}
			fmt.Fprintf(&b, "  %08x want %s\n", s+o, dumpLine(wl))
			fmt.Fprintf(&b, "  %8s got  %s\n", "", dumpLine(gl))
			fmt.Fprintf(&b, "  %8s      %s\n", "", markLine(wl, gl))
		}
	}
	return b.String()
}

// SparseGolden compares img with the sparse golden file at path (see
// EncodeSparse), failing the test with SectorDiff's report of the first
// differing sectors. With update, as set by a test package's -update flag,
// it rewrites the file instead.
func SparseGolden(t testing.TB, path string, img []byte, update bool) {
	t.Helper()
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, EncodeSparse(img), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s", path)
		return
	}
	text, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		t.Fatalf("golden file %s is missing: run go test -update to create it", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	want, err := DecodeSparse(text)
	if err != nil {
		t.Fatalf("golden file %s: %v", path, err)
	}
	if d := SectorDiff(want, img, 3); d != "" {
		t.Errorf("output differs from %s (if the change is intended, run go test -update and review the diff):\n%s", path, d)
	}
}

// isZero reports whether b holds only zeros.
func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// sectorAt returns the sector at byte offset s of img, short or empty at
// the end.
func sectorAt(img []byte, s int) []byte {
	return img[min(s, len(img)):min(s+SectorSize, len(img))]
}

// lineAt returns the 16-byte line at offset o of sec, short or empty at the
// end.
func lineAt(sec []byte, o int) []byte {
	return sec[min(o, len(sec)):min(o+lineBytes, len(sec))]
}

// dumpLine formats up to 16 bytes as hex pairs, a gap after the eighth,
// padded to full width, and an ASCII column.
func dumpLine(line []byte) string {
	var b strings.Builder
	for i := range lineBytes {
		if i == 8 {
			b.WriteByte(' ')
		}
		if i < len(line) {
			fmt.Fprintf(&b, "%02x ", line[i])
		} else {
			b.WriteString("   ")
		}
	}
	b.WriteString(" |")
	for _, c := range line {
		if c < 0x20 || c > 0x7e {
			c = '.'
		}
		b.WriteByte(c)
	}
	b.WriteByte('|')
	return b.String()
}

// markLine returns a line of "^^" under the bytes where want and got
// differ, aligned with dumpLine's hex pairs.
func markLine(want, got []byte) string {
	var b strings.Builder
	for i := range lineBytes {
		if i == 8 {
			b.WriteByte(' ')
		}
		differ := i < max(len(want), len(got)) &&
			(i >= len(want) || i >= len(got) || want[i] != got[i])
		if differ {
			b.WriteString("^^ ")
		} else {
			b.WriteString("   ")
		}
	}
	return strings.TrimRight(b.String(), " ")
}
