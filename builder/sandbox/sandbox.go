// Package sandbox runs a build command isolated from the host: in new user,
// mount, PID, network, UTS and IPC namespaces, on a private root file system
// that holds only what the caller mounts into it, without network and
// without capabilities.
//
//	r := sandbox.Namespaces{}
//	err := r.Run(ctx, &sandbox.Spec{
//		Mounts: []sandbox.Mount{{Source: "/usr", Target: "/usr"}, {Source: work, Target: "/build", Writable: true}},
//		Files:  []sandbox.File{{Path: "/bin", Mode: fs.ModeSymlink, Data: []byte("usr/bin")}},
//		Dir:    "/build", Args: []string{"/bin/sh", "-c", "make"}, Env: env,
//		Stdout: log, Stderr: log,
//	})
//
// The real runner re-executes the running binary (/proc/self/exe) as the
// sandbox's first process, so a program that uses [Namespaces] calls
// [Main] first thing in its main (a test binary in its TestMain); Main
// makes such a re-executed process set up the root and execute the command,
// and returns at once in every other process. Importing the package does
// nothing by itself.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Runner runs a command in a sandbox.
type Runner interface {
	Run(ctx context.Context, s *Spec) error
}

// RunnerFunc adapts a function to a Runner (tests use it as a fake).
type RunnerFunc func(ctx context.Context, s *Spec) error

// Run calls f.
func (f RunnerFunc) Run(ctx context.Context, s *Spec) error { return f(ctx, s) }

// Spec is what to run and what the sandbox sees. The root starts empty:
// everything visible is a Mount, a File, or one of the fixed mounts /dev
// (null, zero, full, random, urandom), /proc, /dev/shm and /tmp
// (empty tmpfs). The root itself is read-only. The command runs in a new
// session without a controlling terminal, reads /dev/null and writes
// through pipes, never to a file descriptor of the caller.
type Spec struct {
	// Mounts are bind mounts from the host, applied in order (mount a
	// directory before anything inside it).
	Mounts []Mount `json:"mounts"`
	// Files are created in the root before the mounts.
	Files []File `json:"files"`
	// Dir is the working directory inside the sandbox ("" is /).
	Dir string `json:"dir"`
	// Args is the command; a program without a slash is found in the PATH of
	// Env.
	Args []string `json:"args"`
	// Env is the complete environment of the command.
	Env []string `json:"env"`
	// Hostname is the sandbox's host name ("" is "ingot").
	Hostname string `json:"hostname"`
	// Stdout and Stderr receive the command's output (nil discards it),
	// copied through a pipe.
	Stdout io.Writer `json:"-"`
	Stderr io.Writer `json:"-"`
}

// Mount is a bind mount of a host file or directory.
type Mount struct {
	// Source is the host path.
	Source string `json:"source"`
	// Target is the absolute path inside the sandbox.
	Target string `json:"target"`
	// Writable mounts are read-write; all others are read-only (with
	// everything under them).
	Writable bool `json:"writable,omitempty"`
}

// File is a file, directory or symbolic link created in the root.
type File struct {
	// Path is absolute inside the sandbox.
	Path string `json:"path"`
	// Mode is the permission bits plus fs.ModeDir or fs.ModeSymlink.
	Mode fs.FileMode `json:"mode"`
	// Data is the content, or the link target of a symbolic link.
	Data []byte `json:"data,omitempty"`
}

// ExitError is a command that ran and exited unsuccessfully.
type ExitError struct {
	// Code is the exit status, or -1 when a signal ended it.
	Code int
	// Signal names the signal that ended it, if one did.
	Signal string
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return "killed by signal " + e.Signal
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// ErrUnsupported means the kernel or the environment does not let this
// process create the namespaces a sandbox needs.
var ErrUnsupported = errors.New("sandbox unavailable")

// ErrNoMain means the re-executed binary did not call Main, so it ran its
// own main instead of the sandbox's first process.
var ErrNoMain = errors.New("sandbox: the program does not call sandbox.Main first thing in main")

// SetupError is a failure to prepare the sandbox, before the command ran.
type SetupError struct {
	Msg string
}

func (e *SetupError) Error() string { return "set up sandbox: " + e.Msg }

// Validate checks a spec before anything runs.
func (s *Spec) Validate() error {
	if len(s.Args) == 0 || s.Args[0] == "" {
		return fmt.Errorf("sandbox spec: no command")
	}
	for _, m := range s.Mounts {
		if !filepath.IsAbs(m.Source) || !isAbsClean(m.Target) || m.Target == "/" {
			return fmt.Errorf("sandbox spec: mount %s on %s: want absolute paths below /", m.Source, m.Target)
		}
	}
	for _, f := range s.Files {
		if !isAbsClean(f.Path) || f.Path == "/" {
			return fmt.Errorf("sandbox spec: file %q: want an absolute path below /", f.Path)
		}
	}
	if s.Dir != "" && !isAbsClean(s.Dir) {
		return fmt.Errorf("sandbox spec: directory %q: want an absolute path", s.Dir)
	}
	return nil
}

func isAbsClean(p string) bool {
	return strings.HasPrefix(p, "/") && filepath.Clean(p) == p
}

// HostSystem returns the mounts and files that make the host's /usr (and
// the top-level /bin, /sbin, /lib* links or directories of a merged-/usr or
// classic layout) visible read-only: the stage-0 toolchain. /etc gets only
// a minimal passwd and group, and the host's /etc/alternatives (read-only)
// that Debian's program links go through.
func HostSystem() ([]Mount, []File, error) {
	mounts := []Mount{{Source: "/usr", Target: "/usr"}}
	files := []File{
		{Path: "/etc", Mode: fs.ModeDir | 0o755},
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte("root:x:0:0:root:/build:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")},
		{Path: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnogroup:x:65534:\n")},
	}
	if _, err := os.Stat("/usr/bin"); err != nil {
		return nil, nil, fmt.Errorf("host toolchain: %w", err)
	}
	// Debian's alternatives (awk, cc, …) are links through /etc/alternatives.
	if fi, err := os.Stat("/etc/alternatives"); err == nil && fi.IsDir() {
		mounts = append(mounts, Mount{Source: "/etc/alternatives", Target: "/etc/alternatives"})
	}
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		fi, err := os.Lstat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return nil, nil, fmt.Errorf("host toolchain: %w", err)
		case fi.Mode()&fs.ModeSymlink != 0:
			t, err := os.Readlink(d)
			if err != nil {
				return nil, nil, fmt.Errorf("host toolchain: %w", err)
			}
			files = append(files, File{Path: d, Mode: fs.ModeSymlink | 0o777, Data: []byte(t)})
		case fi.IsDir():
			mounts = append(mounts, Mount{Source: d, Target: d})
		}
	}
	return mounts, files, nil
}
