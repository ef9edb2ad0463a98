package agentcli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ingot-linux/ingot/agent"
	"github.com/ingot-linux/ingot/internal/fileutil"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/oci"
)

const extLong = `Runtime layers on the device.

  ext add SOURCE     install and merge an extension: a file, a directory
                     holding one NAME_VERSION.raw, or oci://REGISTRY/REPO:TAG
  ext list           the image's and the installed extensions, merged or why not
  ext remove NAME    unmerge and delete an installed extension
  ext sync           add the extensions the machine configuration names
                     (extensions:) that are not installed yet; what
                     ingot-config-extensions.service runs once the network is up

An extension must be signed by the key that signs this image's /usr
(its verity certificate); on an unsigned image, --allow-unsigned accepts an
unsigned one. Its release file must name this OS and version. It is
verified through dm-verity before it is mounted, at add and on every boot,
and merged at once: sysexts into /usr and /opt by systemd-sysext,
confexts into /etc below the machine's own changes. ingot update brings
the build of each extension for the new version along (see --drop-extension).`

// newExt is `ext add SOURCE | list | remove NAME` on the device.
func newExt(e *env) *verb {
	var o agent.ExtOptions
	v := newVerb(e, "ext", "ext add SOURCE | list | remove NAME", "Add, list or remove verified system and configuration extensions (on the device)")
	v.long, v.minArgs, v.maxArgs = extLong, 1, 2
	v.flags.BoolVar(&o.AllowUnsigned, "allow-unsigned", false, "ext add: accept an unsigned extension (only on an unsigned system)")
	v.run = func(ctx context.Context, args []string) error {
		a := agent.New(agent.Config{Logger: e.Logger(), Progress: func(step string) {
			fmt.Fprintf(e.Stderr, "ingot: ext: %s\n", step)
		}})
		switch {
		case args[0] == "add" && len(args) == 2:
			return extAdd(ctx, e, a, args[1], o)
		case args[0] == "list" && len(args) == 1:
			list, err := a.ExtList()
			if err != nil {
				return err
			}
			return e.Render(list, func(w io.Writer) { printExtensions(w, list) })
		case args[0] == "sync" && len(args) == 1:
			return extSync(ctx, e, a)
		case args[0] == "remove" && len(args) == 2:
			if err := a.ExtRemove(args[1]); err != nil {
				return err
			}
			return e.Render(map[string]string{"removed": args[1]}, func(w io.Writer) { fmt.Fprintf(w, "%s removed\n", args[1]) })
		}
		return fmt.Errorf("ext: want add SOURCE, list, remove NAME or sync (see ingot ext --help)")
	}
	return v
}

// extAdd fetches source to a local file if it is remote and installs it.
func extAdd(ctx context.Context, e *env, a *agent.Agent, source string, o agent.ExtOptions) error {
	file, cleanup, err := fetchExtension(ctx, e, source)
	if err != nil {
		return err
	}
	defer cleanup()
	o.Source = source
	if !strings.HasPrefix(source, "oci://") {
		if o.Source, err = filepath.Abs(file); err != nil {
			return err
		}
	}
	x, err := a.ExtAdd(ctx, file, o)
	if err != nil {
		return err
	}
	return e.Render(x, func(w io.Writer) { fmt.Fprintf(w, "%s (%s) merged\n", x.Name, x.Kind) })
}

// fetchExtension turns an extension source into a local file: an
// oci:// reference is pulled into /var/tmp, a directory must hold one
// .raw file, anything else is a file.
func fetchExtension(ctx context.Context, e *env, source string) (file string, cleanup func(), err error) {
	if !strings.HasPrefix(source, "oci://") {
		file, err = extensionFile(source)
		return file, func() {}, err
	}
	tmp, err := os.MkdirTemp(tempParent(), "ingot-ext-*")
	if err != nil {
		return "", nil, fmt.Errorf("make a directory for the extension: %w", err)
	}
	cleanup = func() { os.RemoveAll(tmp) }
	file = filepath.Join(tmp, "extension.raw")
	bar := e.NewProgress("pull", progressInterval)
	opts := []oci.Option{oci.WithKeychain(oci.ConfigKeychain()), oci.WithLogger(e.Logger())}
	if bar != nil {
		opts = append(opts, oci.WithProgress(bar.Update))
	}
	err = oci.PullExtension(ctx, source, file, agent.MaxExtensionBytes, opts...)
	bar.Finish()
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return file, cleanup, nil
}

// extensionFile is source, or the one .raw file in the directory source.
func extensionFile(source string) (string, error) {
	fi, err := os.Stat(source)
	if err != nil {
		return "", fmt.Errorf("extension %s: %w", source, err)
	}
	if !fi.IsDir() {
		return source, nil
	}
	raws, _ := filepath.Glob(filepath.Join(source, "*.raw"))
	if len(raws) != 1 {
		return "", fmt.Errorf("extension directory %s holds %d .raw files: give the file", source, len(raws))
	}
	return raws[0], nil
}

// tempParent is where downloads go: /var/tmp, on the root partition.
func tempParent() string {
	if fi, err := os.Stat("/var/tmp"); err == nil && fi.IsDir() {
		return "/var/tmp"
	}
	return os.TempDir()
}

func printExtensions(w io.Writer, list []agent.Extension) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no extensions")
	}
	for _, x := range list {
		state := "merged"
		if !x.Merged {
			state = "not merged: " + x.Why
		}
		origin := "added"
		if x.Factory {
			origin = "image"
		}
		fmt.Fprintf(w, "%-16s %-8s %-6s signed=%-5v %s\n", x.Name, x.Kind, origin, x.Signed, state)
	}
}

// maxConfigExtensionsBytes bounds the configuration's extension list.
const maxConfigExtensionsBytes = 1 << 20

// extSync adds each extension the applied machine configuration names
// that is not installed from that source yet; one that fails is named and
// the others are still added.
func extSync(ctx context.Context, e *env, a *agent.Agent) error {
	want, err := configExtensions(layout.ConfigExtensionsPath)
	if err != nil || len(want) == 0 {
		return err
	}
	list, err := a.ExtList()
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, x := range list {
		have[x.Source] = true
	}
	var errs []error
	for _, w := range want {
		if have[w.Source] {
			continue
		}
		if err := syncOne(ctx, e, a, w); err != nil {
			errs = append(errs, fmt.Errorf("extension %s: %w", w.Source, err))
		}
	}
	return errors.Join(errs...)
}

// configExtensions reads the configuration's extension list.
func configExtensions(path string) ([]layout.ConfigExtension, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	var list []layout.ConfigExtension
	dec := json.NewDecoder(io.LimitReader(f, maxConfigExtensionsBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return list, nil
}

// syncOne fetches one configured extension, checks its sha256 if the
// configuration gives one, and adds it.
func syncOne(ctx context.Context, e *env, a *agent.Agent, w layout.ConfigExtension) error {
	file, cleanup, err := fetchExtension(ctx, e, w.Source)
	if err != nil {
		return err
	}
	defer cleanup()
	if w.SHA256 != "" {
		got, err := fileutil.SHA256(file)
		if err != nil {
			return err
		}
		if got != w.SHA256 {
			return fmt.Errorf("sha256 is %s, the configuration says %s", got, w.SHA256)
		}
	}
	x, err := a.ExtAdd(ctx, file, agent.ExtOptions{Source: w.Source})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "%s (%s) added from %s\n", x.Name, x.Kind, w.Source)
	return nil
}
