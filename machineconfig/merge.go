package machineconfig

import "maps"

// Merge combines configurations in order, later ones overriding earlier
// ones key by key: hostname, timezone and each update field when set; a
// user, file, unit or network entry by its name or path (the later entry
// replaces the earlier one whole); each sysctl key; extensions are the
// union by source (a later sha256 wins). nil configurations are skipped; the inputs are not changed.
func Merge(cfgs ...*Config) *Config {
	out := &Config{Version: Version}
	for _, c := range cfgs {
		if c == nil {
			continue
		}
		out.Hostname = override(out.Hostname, c.Hostname)
		out.Timezone = override(out.Timezone, c.Timezone)
		out.Users = mergeUsers(out.Users, c.Users)
		out.Files = mergeBy(out.Files, c.Files, func(f File) string { return f.Path })
		out.Units = mergeBy(out.Units, c.Units, func(u Unit) string { return u.Name })
		out.Network = mergeBy(out.Network, c.Network, Network.key)
		if c.Sysctl != nil {
			if out.Sysctl == nil {
				out.Sysctl = map[string]string{}
			}
			maps.Copy(out.Sysctl, c.Sysctl)
		}
		if c.Update != nil {
			u := Update{}
			if out.Update != nil {
				u = *out.Update
			}
			u.Channel, u.Window = override(u.Channel, c.Update.Channel), override(u.Window, c.Update.Window)
			out.Update = &u
		}
		out.Extensions = mergeBy(out.Extensions, c.Extensions, func(e Extension) string { return e.Source })
	}
	return out
}

func override(old, new string) string {
	if new != "" {
		return new
	}
	return old
}

func mergeUsers(old, new []User) []User {
	return mergeBy(old, new, func(u User) string { return u.Name })
}

// mergeBy returns old with each entry of new replacing the one with the
// same key in place, or appended.
func mergeBy[T any](old, new []T, key func(T) string) []T {
	out := append([]T(nil), old...)
	for _, n := range new {
		replaced := false
		for i := range out {
			if key(out[i]) == key(n) {
				out[i], replaced = n, true
			}
		}
		if !replaced {
			out = append(out, n)
		}
	}
	return out
}
