// Package sandboxtest holds test helpers for code that runs sandboxes.
package sandboxtest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/ingot-linux/ingot/builder/sandbox"
	"github.com/ingot-linux/ingot/ingottest"
)

// Require returns the namespace runner after checking that it works here
// (a trivial command in a sandbox). Where it does not, the test skips with
// the reason, or fails under INGOT_REQUIRE_TOOLS=1.
func Require(t testing.TB) sandbox.Runner {
	t.Helper()
	mounts, files, err := sandbox.HostSystem()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := sandbox.Namespaces{}
	err = r.Run(ctx, &sandbox.Spec{Mounts: mounts, Files: files, Args: []string{"/bin/sh", "-c", "true"}, Stderr: &out})
	if err == nil {
		return r
	}
	ingottest.Skip(t, "namespace sandbox unavailable here (needs user namespaces): %v %s", err, out.Bytes())
	return nil
}
