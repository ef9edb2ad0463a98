package boot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ingot-linux/ingot/ext"
	"github.com/ingot-linux/ingot/ext/activate"
	"github.com/ingot-linux/ingot/internal/fileutil"
	"github.com/ingot-linux/ingot/layout"
	"github.com/ingot-linux/ingot/trust"
)

// activateExtensions verifies and mounts the image's own extensions and
// the ones installed for the booted version, before systemd starts:
// sysexts where systemd-sysext.service merges them, confexts where
// mountEtc layers them into /etc. An extension that fails is named on
// the console with the reason and left out; the boot goes on without it.
func activateExtensions(_ context.Context, s *State) error {
	h, err := extensionHost(s)
	if err != nil {
		s.logf("extensions: none activated: %v", err)
		return nil
	}
	var status []layout.ExtensionStatus
	factory := s.path(sysroot + layout.FactoryExtensionsDir)
	installed := s.path(sysroot + filepath.Join(layout.ExtensionsDir, h.Version))
	if len(extensionNames(factory))+len(extensionNames(installed)) > 0 {
		s.needModules("loop", "dm_mod", "dm_verity", "erofs")
	}
	seen := map[string]bool{}
	for _, dir := range []string{factory, installed} {
		for _, name := range extensionNames(dir) {
			st := layout.ExtensionStatus{Name: name, Factory: dir == factory}
			if seen[name] {
				st.Why = "an extension of this name is part of the image"
				s.logf("extension %s refused: %s", name, st.Why)
				status = append(status, st)
				continue
			}
			seen[name] = true
			res, err := activate.Activate(s.Sys, h, filepath.Join(dir, name+".raw"), name)
			if err != nil {
				st.Why = err.Error()
				s.logf("extension %s refused: %v", name, err)
			} else {
				st.Kind, st.Merged = string(res.Kind), true
				if res.Kind == ext.Confext {
					s.Confexts = append(s.Confexts, s.path(res.Dir))
				}
				s.logf("extension %s (%s) verified", name, res.Kind)
			}
			status = append(status, st)
		}
	}
	return writeExtensionStatus(s, status)
}

// extensionHost is what the booted /usr says extensions must fit.
func extensionHost(s *State) (activate.Host, error) {
	b, err := os.ReadFile(s.path(sysroot + "/usr/lib/os-release"))
	if err != nil {
		return activate.Host{}, err
	}
	id, version, err := ext.OSRelease(b)
	if err == nil {
		err = layout.CheckVersion(version)
	}
	if err != nil {
		return activate.Host{}, fmt.Errorf("os-release: %w", err)
	}
	h := activate.Host{ID: id, Version: version, Root: s.Root}
	h.Roots, err = trust.LoadCertificates(s.path(VerityCertPath))
	if errors.Is(err, os.ErrNotExist) {
		// An unsigned image: installed extensions were accepted
		// unsigned by `ingot ext add --allow-unsigned`.
		h.Roots, h.AllowUnsigned, err = nil, true, nil
	}
	return h, err
}

// extensionNames lists the NAME of each NAME.raw in dir, in name order.
func extensionNames(dir string) []string {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".raw"); ok && !strings.HasPrefix(name, ".") {
			names = append(names, name)
		}
	}
	return names
}

func writeExtensionStatus(s *State, status []layout.ExtensionStatus) error {
	if status == nil {
		return nil
	}
	b, err := json.Marshal(status)
	if err != nil {
		return err
	}
	p := s.path(layout.ExtensionStatusPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return fileutil.WriteAtomic(p, b, 0o644)
}
