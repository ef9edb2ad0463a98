package uki

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrNoSection is returned, wrapped, when an image has no section of the
// requested name.
var ErrNoSection = errors.New("uki: no such section")

// Image is a parsed UKI (or any PE/COFF EFI application) whose sections can
// be read. Its methods read from the io.ReaderAt given to Open, which must
// stay valid and unchanged while the Image is used; they are safe for
// concurrent use if that reader is.
type Image struct {
	r        io.ReaderAt
	sections []imageSection
}

type imageSection struct {
	name string
	off  int64 // PointerToRawData
	size int64 // bytes of the section stored in the file
}

// Open parses the PE/COFF headers of a UKI read from r. It checks that r
// holds a PE32 or PE32+ EFI application with at least one section and no
// two sections of the same name, and, if r has a Size method (like
// *bytes.Reader and *io.SectionReader) or is a regular *os.File, that all
// section data lies within it. Section data is only read when asked for.
func Open(r io.ReaderAt) (*Image, error) {
	h, err := parseHeaders(r, inputSize(r))
	if err != nil {
		return nil, err
	}
	img := &Image{r: r, sections: make([]imageSection, 0, len(h.sections))}
	seen := make(map[string]bool, len(h.sections))
	for _, s := range h.sections {
		if seen[s.name] {
			return nil, fmt.Errorf("uki: duplicate section %q", s.name)
		}
		seen[s.name] = true
		img.sections = append(img.sections, imageSection{
			name: s.name,
			off:  int64(s.pointerToRawData),
			size: int64(s.fileSize()),
		})
	}
	return img, nil
}

// Sections returns the names of the image's sections in section table
// order, the stub's own sections (.text, .data, .sbat, ...) included.
func (img *Image) Sections() []string {
	names := make([]string, len(img.sections))
	for i, s := range img.sections {
		names[i] = s.name
	}
	return names
}

func (img *Image) lookup(name string) (*imageSection, error) {
	for i := range img.sections {
		if img.sections[i].name == name {
			return &img.sections[i], nil
		}
	}
	return nil, fmt.Errorf("%w %q", ErrNoSection, name)
}

// Section returns the contents of the named section: its first VirtualSize
// bytes as stored in the file, without the file-alignment padding. If
// VirtualSize is zero or exceeds SizeOfRawData (the loader zero-fills the
// rest in memory), it returns the SizeOfRawData bytes stored in the file.
// If there is no such section, the error wraps ErrNoSection.
func (img *Image) Section(name string) ([]byte, error) {
	s, err := img.lookup(name)
	if err != nil {
		return nil, err
	}
	b, err := readAt(img.r, s.off, s.size)
	if err != nil {
		return nil, fmt.Errorf("uki: reading section %q: %w", name, err)
	}
	return b, nil
}

// SectionReader returns a reader over the contents of the named section,
// the same bytes Section returns, without reading them into memory. If
// there is no such section, the error wraps ErrNoSection.
func (img *Image) SectionReader(name string) (*io.SectionReader, error) {
	s, err := img.lookup(name)
	if err != nil {
		return nil, err
	}
	return io.NewSectionReader(img.r, s.off, s.size), nil
}

// Cmdline returns the kernel command line from the .cmdline section, with
// trailing NUL bytes and white space removed.
func (img *Image) Cmdline() (string, error) {
	b, err := img.Section(SectionCmdline)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\x00 \t\r\n"), nil
}

// OSRelease parses the .osrel section as an os-release(5) file and returns
// its variables. Comments, blank lines and lines that are not KEY=VALUE
// assignments are ignored; single- and double-quoted values are unquoted
// and backslash escapes resolved as a shell would; a later assignment to
// the same key wins.
func (img *Image) OSRelease() (map[string]string, error) {
	b, err := img.Section(SectionOSRel)
	if err != nil {
		return nil, err
	}
	return parseOSRelease(string(b)), nil
}

func parseOSRelease(s string) map[string]string {
	vars := make(map[string]string)
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(strings.TrimRight(line, "\x00"))
		if line == "" || line[0] == '#' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok || !isEnvName(key) {
			continue
		}
		vars[key] = unquote(value)
	}
	return vars
}

// isEnvName reports whether s is a valid shell variable name.
func isEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '_' && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// unquote resolves shell quoting in an os-release value: 'single' quotes
// are literal, inside "double" quotes a backslash escapes $ ` " and \, and
// outside quotes a backslash escapes any character.
func unquote(v string) string {
	var b strings.Builder
	var quote byte // 0, '\'' or '"'
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				b.WriteByte(c)
			}
		case c == '\\' && i+1 < len(v) && (quote == 0 || strings.IndexByte("$`\"\\", v[i+1]) >= 0):
			i++
			b.WriteByte(v[i])
		case quote == '"' && c == '"':
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
