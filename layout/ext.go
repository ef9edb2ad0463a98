package layout

import "path/filepath"

// Where runtime extensions live on the device. Images are kept on the
// root partition per OS version, so `ingot reset` removes them, a
// rollback finds the set of the version it boots, and /usr never holds
// them; each verified image is mounted read-only below the directory
// systemd-sysext merges from, as a directory, so systemd does no verity
// of its own.
const (
	// ExtensionsDir holds ExtensionsDir/<os-version>/<name>.raw and, for
	// one added from a source ingot can look in again, <name>.source.
	ExtensionsDir = "/var/lib/ingot/extensions"
	// FactoryExtensionsDir holds the image's own extensions (`ingot image
	// --extension`), <name>.raw, inside the verified /usr.
	FactoryExtensionsDir = "/usr/lib/ingot/extensions"
	// SysextMountDir is systemd-sysext's runtime search directory.
	SysextMountDir = "/run/extensions"
	// ExtensionStatusPath is where ingot-init records what it activated
	// and why it refused the rest: []ExtensionStatus as JSON.
	ExtensionStatusPath = RunDir + "/extensions.json"
)

// ExtensionStatus is one extension as ingot-init found it at boot.
type ExtensionStatus struct {
	Name    string `json:"name"`
	Kind    string `json:"type,omitempty"`
	Factory bool   `json:"factory,omitempty"`
	Merged  bool   `json:"merged"`
	Why     string `json:"why,omitempty"`
}

// ExtensionPath is the image of extension name for OS version osVersion;
// name and osVersion must be checked by the caller (ext.CheckName,
// CheckVersion).
func ExtensionPath(osVersion, name string) string {
	return filepath.Join(ExtensionsDir, osVersion, name+".raw")
}
