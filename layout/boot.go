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
