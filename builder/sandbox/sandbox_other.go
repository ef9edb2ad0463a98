//go:build !linux

package sandbox

import (
	"context"
	"fmt"
)

// Namespaces is the real runner; it needs Linux.
type Namespaces struct{}

// Run reports that sandboxes need Linux.
func (Namespaces) Run(context.Context, *Spec) error {
	return fmt.Errorf("%w: namespaces need Linux", ErrUnsupported)
}

// Main does nothing: sandboxes need Linux.
func Main() {}
