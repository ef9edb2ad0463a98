package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/ingot-linux/ingot/layout"
)

// Config returns what ingot-init did with the machine configuration in
// this boot: the sources it read, what it changed, why it applied
// nothing, and the merged configuration with secrets redacted. nil when
// the boot left no record (an ingot-init from before configuration).
func (a *Agent) Config() (*layout.ConfigStatus, error) {
	b, err := os.ReadFile(a.path(layout.ConfigStatusPath))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st layout.ConfigStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("parse %s: %w", layout.ConfigStatusPath, err)
	}
	return &st, nil
}
