// Package boot is ingot-init's boot plan: from the kernel command line to a
// verified /usr, a persistent root, an /etc overlay and switch_root into
// systemd.
//
// The plan is data: Plan returns named steps, and Run executes them against a
// Sys, so the sequence can be tested without root and every failure names its
// step.
//
//	err := initrd.Run(ctx, initrd.Config{Sys: sys.Linux{}, Console: console})
package boot
