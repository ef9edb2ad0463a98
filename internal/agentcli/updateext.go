package agentcli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ingot-linux/ingot/agent"
	"github.com/ingot-linux/ingot/layout"
)

// stageExtensions brings each installed extension's build for version
// along: from the repository it was added from, tag version; or, for a
// file, NAME_VERSION.raw beside it. A missing or unfit build refuses the
// update unless the extension is in drop. On error nothing is staged;
// unstage undoes it after an update that failed (only a set this call
// made: a version that had one, e.g. the other slot's, keeps it).
func stageExtensions(ctx context.Context, e *env, a *agent.Agent, version string, drop []string) (unstage func(), err error) {
	list, err := a.ExtList()
	if err != nil {
		return nil, err
	}
	unstage = func() {}
	if _, err := os.Stat(filepath.Join(layout.ExtensionsDir, version)); os.IsNotExist(err) {
		unstage = func() { a.ExtUnstage(version) }
	}
	for _, x := range list {
		if x.Factory || slices.Contains(drop, x.Name) {
			continue
		}
		if err := stageOne(ctx, e, a, x, version); err != nil {
			unstage()
			return nil, fmt.Errorf("extension %s: no build for %s: %w (to update without it: --drop-extension %s)", x.Name, version, err, x.Name)
		}
		fmt.Fprintf(e.Stderr, "ingot: update: extension %s for %s staged\n", x.Name, version)
	}
	return unstage, nil
}

func stageOne(ctx context.Context, e *env, a *agent.Agent, x agent.Extension, version string) error {
	src, err := nextSource(x, version)
	if err != nil {
		return err
	}
	file, cleanup, err := fetchExtension(ctx, e, src)
	if err != nil {
		return err
	}
	defer cleanup()
	name, err := a.ExtStage(version, file, src)
	if err == nil && name != x.Name {
		err = fmt.Errorf("%s holds extension %s", src, name)
	}
	return err
}

// nextSource is where the build of installed extension x for version is:
// the same repository with the version as tag, or the file
// NAME_VERSION.raw in the directory x came from.
func nextSource(x agent.Extension, version string) (string, error) {
	switch {
	case x.Source == "":
		return "", fmt.Errorf("ingot does not know where it came from (add it again with ingot ext add)")
	case strings.HasPrefix(x.Source, "oci://"):
		ref := strings.TrimPrefix(x.Source, "oci://")
		if strings.Contains(ref, "@") {
			return "", fmt.Errorf("it was added by digest (%s), which names one build", x.Source)
		}
		repo := ref
		if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
			repo = ref[:i]
		}
		return "oci://" + repo + ":" + version, nil
	}
	p := filepath.Join(filepath.Dir(x.Source), x.Name+"_"+version+".raw")
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}
