package layout

import "path/filepath"

// Where runtime extensions live on the device. Images are kept on the
// root partition per OS version, so `ingot reset` removes them, a
// rollback finds the set of the version it boots, and /usr never holds
// them; each verified image is mounted read-only below the directory
// systemd-sysext (or -confext) merges from, as a directory, so systemd
// does no verity of its own.
const (
	// ExtensionsDir holds ExtensionsDir/<os-version>/<name>.raw.
	ExtensionsDir = "/var/lib/ingot/extensions"
	// SysextMountDir and ConfextMountDir are systemd-sysext's and
	// systemd-confext's runtime search directories.
	SysextMountDir  = "/run/extensions"
	ConfextMountDir = "/run/confexts"
)

// ExtensionPath is the image of extension name for OS version osVersion;
// name and osVersion must be checked by the caller (ext.CheckName,
// CheckVersion).
func ExtensionPath(osVersion, name string) string {
	return filepath.Join(ExtensionsDir, osVersion, name+".raw")
}
