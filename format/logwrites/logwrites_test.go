package logwrites

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
)

// sampleLog writes: a 2-sector write, a flush, a discard, a mark, a FUA write.
func sampleLog(t testing.TB, closeIt bool) *ingottest.MemFile {
	t.Helper()
	f := &ingottest.MemFile{}
	w, err := NewWriter(f, 512)
	if err != nil {
		t.Fatal(err)
	}
	steps := []error{
		w.Write(4096, bytes.Repeat([]byte{0xaa}, 1024), 0),
		w.Flush(),
		w.Discard(1<<20, 8192),
		w.Mark("after-discard"),
		w.Write(512, bytes.Repeat([]byte{0xbb}, 512), FUA),
	}
	if err := errors.Join(steps...); err != nil {
		t.Fatal(err)
	}
	if closeIt {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func collect(t *testing.T, l *Log, opts ...Option) []Entry {
	t.Helper()
	out, err := l.ReadAll(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	f := sampleLog(t, true)
	l, err := Open(f)
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, l)
	want := []struct {
		sector, sectors, flags uint64
		dataBytes              int64
	}{
		{8, 2, 0, 1024},
		{0, 0, Flush, 0},
		{2048, 16, Discard, 0},
		{0, 0, Mark, int64(len("after-discard"))},
		{1, 1, FUA, 512},
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		e := got[i]
		if e.Index != i || e.Sector != w.sector || e.Sectors != w.sectors || e.Flags != w.flags || e.DataBytes != w.dataBytes {
			t.Errorf("entry %d = %+v, want %+v", i, e, w)
		}
	}
	data, _ := io.ReadAll(l.Data(got[0]))
	if !bytes.Equal(data, bytes.Repeat([]byte{0xaa}, 1024)) {
		t.Errorf("data of entry 0 is wrong")
	}
	mark, _ := io.ReadAll(l.Data(got[3]))
	if string(mark) != "after-discard" {
		t.Errorf("mark %q", mark)
	}
	if !got[0].IsWrite() || got[1].IsWrite() || got[2].IsWrite() || got[3].IsWrite() {
		t.Error("IsWrite is wrong")
	}
	if l.ByteOffset(got[2]) != 1<<20 || l.ByteLen(got[2]) != 8192 {
		t.Errorf("discard covers %d+%d", l.ByteOffset(got[2]), l.ByteLen(got[2]))
	}
}

// TestUncounted reads a log whose superblock was last written at the
// flush, as QEMU leaves it.
func TestUncounted(t *testing.T) {
	f := sampleLog(t, false) // count 0: never closed
	l, err := Open(f)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(collect(t, l)); n != 0 {
		t.Errorf("%d entries without WithUncounted, want 0", n)
	}
	if n := len(collect(t, l, WithUncounted())); n != 5 {
		t.Errorf("%d entries with WithUncounted, want 5", n)
	}
	// A torn tail (half the last entry's data) ends the sequence quietly.
	f.B = f.B[:len(f.B)-256]
	if n := len(collect(t, l, WithUncounted())); n != 4 {
		t.Errorf("%d entries of a torn log, want 4", n)
	}
}

func TestOpenErrors(t *testing.T) {
	good := sampleLog(t, true).B
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
		want   error
	}{
		{"empty", func([]byte) []byte { return nil }, io.EOF},
		{"magic", func(b []byte) []byte { b[0] ^= 1; return b }, ErrNotLog},
		{"version", func(b []byte) []byte { b[8] = 2; return b }, ErrNotLog},
		{"sector size", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[24:], 513); return b }, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mutate(append([]byte(nil), good...))
			if _, err := Open(bytes.NewReader(b)); !errors.Is(err, tt.want) {
				t.Errorf("Open: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEntryErrors(t *testing.T) {
	good := sampleLog(t, true).B
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
	}{
		{"flags", func(b []byte) []byte { b[512+16] = 0x80; return b }},
		{"huge", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[512+8:], MaxEntrySectors+1); return b }},
		{"past end", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[512+8:], 4096); return b }},
		{"truncated", func(b []byte) []byte { return b[:600] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Open(bytes.NewReader(tt.mutate(append([]byte(nil), good...))))
			if err != nil {
				t.Fatal(err)
			}
			var last error
			for _, err := range l.Entries() {
				last = err
			}
			if !errors.Is(last, ErrCorrupt) {
				t.Errorf("last error %v, want ErrCorrupt", last)
			}
		})
	}
}

func TestWriterRejects(t *testing.T) {
	if _, err := NewWriter(&ingottest.MemFile{}, 100); err == nil {
		t.Error("sector size 100 accepted")
	}
	w, err := NewWriter(&ingottest.MemFile{}, 512)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(1, make([]byte, 512), 0); err == nil {
		t.Error("unaligned write accepted")
	}
	if err := w.Discard(0, 100); err == nil {
		t.Error("partial-sector discard accepted")
	}
}

// FuzzEntries: whatever the bytes, Open and Entries end without panic, and
// every entry's data lies within the log.
func FuzzEntries(f *testing.F) {
	f.Add(sampleLog(f, true).B)
	f.Add(sampleLog(f, false).B)
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Open(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, opts := range [][]Option{nil, {WithUncounted()}} {
			n := 0
			for e, err := range l.Entries(opts...) {
				if err != nil {
					break
				}
				if e.DataBytes > 0 && e.DataOffset+e.DataBytes > int64(len(b)) {
					t.Fatalf("entry %d data %d+%d beyond the log (%d bytes)", e.Index, e.DataOffset, e.DataBytes, len(b))
				}
				n++
				if n > len(b) {
					t.Fatalf("more entries than bytes")
				}
			}
		}
	})
}
