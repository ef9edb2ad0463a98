package gpt

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/ingot-linux/ingot/ingottest"
)

// memDisk is an in-memory disk image implementing io.ReaderAt and
// io.WriterAt.
type memDisk struct {
	b []byte
}

func newMemDisk(size int64) *memDisk { return &memDisk{b: make([]byte, size)} }

func (m *memDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memDisk) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

func (m *memDisk) size() int64 { return int64(len(m.b)) }

// clone returns an independent copy of m.
func (m *memDisk) clone() *memDisk { return &memDisk{b: append([]byte(nil), m.b...)} }

// countingWriter counts writes and fails once limit writes were done
// (limit < 0: never), simulating power loss.
type countingWriter struct {
	w      io.WriterAt
	writes int
	limit  int
	syncs  int
}

var errPowerLoss = errors.New("power loss")

func (c *countingWriter) WriteAt(p []byte, off int64) (int, error) {
	if c.limit >= 0 && c.writes >= c.limit {
		return 0, errPowerLoss
	}
	c.writes++
	return c.w.WriteAt(p, off)
}

func (c *countingWriter) Sync() error {
	c.syncs++
	return nil
}

// requireTool returns the path of an external validator, skipping the test
// when it is missing unless INGOT_REQUIRE_TOOLS=1, which makes it fail.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		ingottest.Skip(t, "%s not installed: %v", name, err)
	}
	return path
}

// sgdisk runs sgdisk with args and returns its combined output.
func sgdisk(t *testing.T, args ...string) string {
	t.Helper()
	path := requireTool(t, "sgdisk")
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("sgdisk %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// sgdiskVerify asserts that `sgdisk -v image` finds no problems.
func sgdiskVerify(t *testing.T, image string) {
	t.Helper()
	out := sgdisk(t, "-v", image)
	if !strings.Contains(out, "No problems found") {
		t.Fatalf("sgdisk -v %s reports problems:\n%s", image, out)
	}
}

// sgdiskInfo returns the "Key: value" lines of `sgdisk -i n image`.
func sgdiskInfo(t *testing.T, image string, n int) map[string]string {
	t.Helper()
	out := sgdisk(t, "-i", strconv.Itoa(n), image)
	info := make(map[string]string)
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if ok {
			info[k] = v
		}
	}
	return info
}

// writeImage writes t to a new sparse file of size bytes in a temporary
// directory and returns its path.
func writeImage(t *testing.T, tab *Table, size int64) string {
	t.Helper()
	path := t.TempDir() + "/disk.img"
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := tab.Write(f, size); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// readImage reads the GPT of the file at path.
func readImage(t *testing.T, path string, ss int) (*Table, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return Read(f, st.Size(), ss)
}

// guid builds a test GUID whose bytes are all b except the last, which is i.
func guid(b, i byte) GUID {
	var g GUID
	for k := range g {
		g[k] = b
	}
	g[15] = i
	return g
}
