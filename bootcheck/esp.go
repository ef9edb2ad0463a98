package bootcheck

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"

	"github.com/ingot-linux/ingot/format/fat"
	"github.com/ingot-linux/ingot/format/gpt"
	"github.com/ingot-linux/ingot/format/uki"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
)

// disk is the disk with its partition table.
type disk struct {
	r     io.ReaderAt
	size  int64
	table *gpt.Table
}

func openDisk(r io.ReaderAt, size int64) (*disk, error) {
	t, err := gpt.Read(r, size, 512)
	if err != nil {
		return nil, stepErr("read partition table", err)
	}
	return &disk{r: r, size: size, table: t}, nil
}

// part returns a reader over partition p.
func (d *disk) part(p gpt.Partition) *io.SectionReader {
	return io.NewSectionReader(d.r, p.Offset(512), p.Size(512))
}

// fingerprint names the content of partition p, or reports false when the
// disk cannot.
func (d *disk) fingerprint(p gpt.Partition) ([32]byte, bool) {
	f, ok := d.r.(Fingerprinter)
	if !ok {
		return [32]byte{}, false
	}
	return f.Fingerprint(p.Offset(512), p.Size(512)), true
}

// espState is what systemd-boot reads from the ESP.
type espState struct {
	fs          fs.FS
	part        gpt.Partition
	confDefault string
	entries     []Entry // sorted
	// skipped are *.efi files systemd-boot leaves out of its menu, with
	// the reason.
	skipped []error
}

// readESP opens the ESP the firmware boots from: the EFI System Partition
// with the removable-media loader path.
func (c *Checker) readESP(d *disk) (*espState, error) {
	var lastErr error
	for _, p := range d.table.ByType(layout.TypeESP) {
		esp, err := c.openESP(d, p)
		if err == nil {
			return esp, nil
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = errors.New("the disk has no EFI System Partition")
	}
	return nil, stepErr("read ESP", lastErr)
}

func (c *Checker) openESP(d *disk, p gpt.Partition) (*espState, error) {
	fsys, err := fat.Open(d.part(p))
	if err != nil {
		return nil, err
	}
	if _, err := fs.Stat(fsys, layout.BootLoaderPath); err != nil {
		return nil, fmt.Errorf("no boot loader: %w", err)
	}
	def, err := loaderDefault(fsys)
	if err != nil {
		return nil, err
	}
	esp := &espState{fs: fsys, part: p, confDefault: def}
	if esp.entries, esp.skipped, err = listEntries(fsys); err != nil {
		return nil, err
	}
	return esp, nil
}

// listEntries reads the type #2 entries systemd-boot shows: files named
// *.efi in EFI/Linux whose .osrel it can read; the others are skipped.
func listEntries(fsys fs.FS) (out []Entry, skipped []error, err error) {
	des, err := fs.ReadDir(fsys, layout.UKIDir)
	if isNotExist(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list %s: %w", layout.UKIDir, err)
	}
	for _, de := range des {
		e, ok := parseEntryName(de.Name())
		if !ok || de.IsDir() {
			continue
		}
		osr, err := readOSRelease(fsys, path.Join(layout.UKIDir, de.Name()))
		if err != nil {
			// systemd-boot skips a UKI without a readable .osrel.
			skipped = append(skipped, fmt.Errorf("%s skipped: %w", de.Name(), err))
			continue
		}
		e.SortKey = first2(osr["IMAGE_ID"], osr["ID"])
		e.Version = first2(osr["IMAGE_VERSION"], first2(osr["VERSION"], first2(osr["VERSION_ID"], osr["BUILD_ID"])))
		out = append(out, e)
	}
	sortEntries(out)
	return out, skipped, nil
}

func first2(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func readOSRelease(fsys fs.FS, name string) (map[string]string, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		return nil, errors.New("the file is empty")
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		return nil, errors.New("file is not an io.ReaderAt")
	}
	img, err := uki.Open(ra)
	if err != nil {
		return nil, err
	}
	return img.OSRelease()
}

// ukiInfo is what loading a UKI tells: whether it starts, and what it
// boots.
type ukiInfo struct {
	err     error // the UKI does not start
	cmdErr  error // ingot-init refuses its command line
	usrHash []byte
	version string
}

// loadUKI checks that the entry's UKI is whole (and signed, when the
// machine has a db), and reads its command line.
func (c *Checker) loadUKI(d *disk, esp *espState, e Entry) *ukiInfo {
	key, memo := d.fingerprint(esp.part)
	if memo {
		key = sha256.Sum256(append(key[:], e.File...))
		if info, ok := c.ukis[key]; ok {
			c.Stats.UKIMemoHits++
			return info
		}
	}
	c.Stats.UKIChecks++
	info := c.checkUKI(esp.fs, e)
	if memo {
		c.ukis[key] = info
	}
	return info
}

func (c *Checker) checkUKI(fsys fs.FS, e Entry) *ukiInfo {
	data, err := fs.ReadFile(fsys, path.Join(layout.UKIDir, e.File))
	if err != nil {
		return &ukiInfo{err: fmt.Errorf("read %s: %w", e.File, err)}
	}
	if c.opts.DB != nil {
		if err := trust.VerifyPE(data, c.opts.DB); err != nil {
			return &ukiInfo{err: fmt.Errorf("%s is not whole and signed by the db: %w", e.File, err)}
		}
	} else if err := uki.VerifyChecksum(bytes.NewReader(data), int64(len(data))); err != nil {
		return &ukiInfo{err: fmt.Errorf("%s is not whole: %w", e.File, err)}
	}
	img, err := uki.Open(bytes.NewReader(data))
	if err != nil {
		return &ukiInfo{err: err}
	}
	cmdline, err := img.Cmdline()
	if err != nil {
		return &ukiInfo{err: err}
	}
	p, err := layout.ParseBoot(cmdline)
	if err == nil && p.UsrHash == nil {
		err = errors.New("no usrhash= on its command line")
	}
	osr, _ := img.OSRelease()
	return &ukiInfo{usrHash: p.UsrHash, version: osr["IMAGE_VERSION"], cmdErr: stepErr("read kernel command line", err)}
}
