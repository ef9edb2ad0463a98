// Package machineconfig is a machine's configuration: one versioned YAML
// format (hostname, timezone, users, files, systemd units, network,
// sysctl, the update channel, extensions), its JSON Schema made from the
// same Go types, the merge of several sources key by key, an importer for
// the common subset of cloud-init's #cloud-config, and the rendering and
// staged, idempotent application of the result into a root filesystem's
// /etc and /var.
//
//	cfg, err := machineconfig.Parse("machine.yaml", data) // errors carry file:line:column
//	merged := machineconfig.Merge(defaults, cfg)
//	changes, err := machineconfig.Apply(root, merged, machineconfig.ApplyOptions{})
//
// Nothing here logs: values the package calls secret (password hashes,
// files marked secret) appear only in the files they are written to.
package machineconfig
