package layout

// Paths on the running system. Paths under /usr are relative to it and
// listed with the files ingot adds to /usr.
const (
	// RunDir holds what ingot-init hands the booted system and the
	// agent's locks and mounts.
	RunDir = "/run/ingot"
	// BootInfoPath is where ingot-init leaves BootInfo.
	BootInfoPath = RunDir + "/boot.json"
	// StateDir (on the root partition) holds ingot's own state: the /etc
	// overlay's upper and work directories.
	StateDir = ".ingot"
	// InitrdModulesFile (under /usr/lib/modules in the initrd) lists the
	// kernel modules the initrd carries, in load order, each with the
	// modules it needs and the device aliases it drives.
	InitrdModulesFile = "ingot-modules"
)

// BootInfo is what ingot-init leaves in BootInfoPath for the booted
// system: which /usr and slot it set up, from which disk.
type BootInfo struct {
	UsrHash   string `json:"usrhash"`
	Slot      string `json:"slot"`
	Disk      string `json:"disk"`
	UsrPart   string `json:"usrPartition"`
	RootPart  string `json:"rootPartition"`
	FirstBoot bool   `json:"firstBoot"`
}

// Machine configuration: where its sources are, where ingot-init keeps
// what it applied, and what it tells the booted system.
const (
	// ConfigDefaultsPath (under /usr) is the image's own configuration
	// (ingot image --config), the first source.
	ConfigDefaultsPath = "lib/ingot/config.yaml"
	// ConfigESPPath is the operator's per-machine file on the ESP, the
	// second source.
	ConfigESPPath = "ingot/config.yaml"
	// ConfigCredential is the systemd credential (SMBIOS type 11 from
	// the hypervisor) that is the third source.
	ConfigCredential = "ingot.config"
	// ConfigNoCloudLabel is the volume label of a NoCloud seed (vfat,
	// any case) whose user-data is the fourth source.
	ConfigNoCloudLabel = "CIDATA"
	// ConfigCertPath (under /usr) is the certificate whose signatures
	// ingot-init accepts when the image requires signed configuration
	// (KeyConfigSigned): ingot image --require-signed-config puts the
	// verity key's certificate there.
	ConfigCertPath = TrustDir + "/config.crt"
	// ConfigSigSuffix names a source's detached PKCS#7 signature: the
	// ESP's ingot/config.yaml.sig, the credential ingot.config.sig, the
	// seed's user-data.sig.
	ConfigSigSuffix = ".sig"
	// ConfigStatePath (on the root partition) records the hash of each
	// source last applied.
	ConfigStatePath = StateDir + "/config/applied.json"
	// ConfigStatusPath is where ingot-init leaves ConfigStatus.
	ConfigStatusPath = RunDir + "/config.json"
)

// ConfigSource is one configuration source and the sha256 of its bytes.
type ConfigSource struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// ConfigStatus is what ingot-init did with the machine configuration in
// this boot, for ingot status and ingot config show.
type ConfigStatus struct {
	// Sources are the sources read, in order.
	Sources []ConfigSource `json:"sources"`
	// Changed are the paths written in this boot (none when the sources
	// are unchanged).
	Changed []string `json:"changed,omitempty"`
	// Error is why nothing was applied in this boot, naming the source.
	Error string `json:"error,omitempty"`
	// Merged is the configuration in force, as YAML, secrets redacted.
	Merged string `json:"merged,omitempty"`
	// Ignored are the #cloud-config keys not applied, with positions.
	Ignored []string `json:"ignored,omitempty"`
}
