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

// ConfigExtensionsPath is where the applied machine configuration leaves
// its extensions, a JSON list of ConfigExtension in the configuration's
// order, for ingot-config-extensions.service (ingot ext sync), which adds
// them once the network is up; it is removed when the configuration
// names none. It is under ingot's own state, which a configuration's
// files: may not write.
const ConfigExtensionsPath = "/var/lib/ingot/config/extensions.json"

// ConfigExtension is one extension a machine configuration asks for.
type ConfigExtension struct {
	// Source is what ingot ext add takes.
	Source string `json:"source"`
	// SHA256, if set, is the hex sha256 the image must have.
	SHA256 string `json:"sha256,omitempty"`
}

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
