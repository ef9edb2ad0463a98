package builder

import (
	"fmt"
	"strings"

	"github.com/ingot-linux/ingot/cookbook"
)

// Paths inside the build sandbox.
const (
	SrcDir     = "/build/src"    // the unpacked, patched sources (writable)
	DestDir    = "/build/out"    // the install root (writable)
	RecipeDir  = "/build/recipe" // the recipe's patches and files (read-only)
	SysrootDir = "/sysroot"      // build inputs' runtime and dev trees (read-only)
	HomeDir    = "/build/home"   // HOME (writable)
)

// Script returns the shell script that builds r in the sandbox. Arguments
// from the recipe are passed as single words in which $VARIABLES expand.
func Script(r *cookbook.Recipe) string {
	b := &strings.Builder{}
	fmt.Fprintf(b, "# ingot build script for %s %s (generated)\nset -ex\n", r.Name, r.Version)
	fmt.Fprintf(b, "cd %s\n", SrcDir)
	for _, p := range r.Patches {
		fmt.Fprintf(b, "patch -p1 --forward --no-backup-if-mismatch -i %s\n", word(RecipeDir+"/"+p))
	}
	if r.Builder.Dir != "" {
		fmt.Fprintf(b, "cd %s\n", word(r.Builder.Dir))
	}
	for _, e := range r.Builder.Env {
		k, v, _ := strings.Cut(e, "=")
		fmt.Fprintf(b, "export %s=%s\n", k, word(v))
	}
	for _, l := range r.Builder.Prepare {
		fmt.Fprintln(b, l)
	}
	bu := r.Builder
	args := func(a []string) string {
		var s strings.Builder
		for _, w := range a {
			s.WriteString(" " + word(w))
		}
		return s.String()
	}
	switch bu.Type {
	case cookbook.Autotools:
		fmt.Fprintf(b, "./configure --prefix=/usr --sysconfdir=/etc --localstatedir=/var%s\n", args(bu.ConfigureArgs))
		fmt.Fprintf(b, "make -j\"$JOBS\"%s\n", args(bu.MakeArgs))
		fmt.Fprintf(b, "make DESTDIR=\"$DESTDIR\" install%s\n", args(bu.InstallArgs))
	case cookbook.Meson:
		fmt.Fprintf(b, "meson setup _build --prefix=/usr --sysconfdir=/etc --localstatedir=/var --buildtype=release --wrap-mode=nodownload%s\n", args(bu.ConfigureArgs))
		fmt.Fprintf(b, "ninja -C _build -j \"$JOBS\"%s\n", args(bu.MakeArgs))
		fmt.Fprintf(b, "DESTDIR=\"$DESTDIR\" meson install -C _build --no-rebuild%s\n", args(bu.InstallArgs))
	case cookbook.CMake:
		fmt.Fprintf(b, "cmake -S . -B _build -G 'Unix Makefiles' -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=Release%s\n", args(bu.ConfigureArgs))
		fmt.Fprintf(b, "cmake --build _build -j \"$JOBS\"%s\n", args(bu.MakeArgs))
		fmt.Fprintf(b, "DESTDIR=\"$DESTDIR\" cmake --install _build%s\n", args(bu.InstallArgs))
	case cookbook.Make:
		fmt.Fprintf(b, "make -j\"$JOBS\"%s\n", args(bu.MakeArgs))
		fmt.Fprintf(b, "make DESTDIR=\"$DESTDIR\" PREFIX=/usr install%s\n", args(bu.InstallArgs))
	case cookbook.Kernel:
		kernelScript(b, bu, args)
	case cookbook.Steps:
		for _, l := range bu.Steps {
			fmt.Fprintln(b, l)
		}
	}
	if len(bu.PostInstall) > 0 {
		fmt.Fprintln(b, "cd \"$DESTDIR\"")
		for _, l := range bu.PostInstall {
			fmt.Fprintln(b, l)
		}
	}
	return b.String()
}

func kernelScript(b *strings.Builder, bu cookbook.Builder, args func([]string) string) {
	config := bu.Config
	if config == "" {
		config = "defconfig"
	}
	fmt.Fprintln(b, "export ARCH=x86_64 KBUILD_BUILD_USER=ingot KBUILD_BUILD_HOST=ingot")
	fmt.Fprintln(b, "export KBUILD_BUILD_TIMESTAMP=\"$(date -u -d @\"$SOURCE_DATE_EPOCH\")\"")
	fmt.Fprintf(b, "make %s\n", word(config))
	if len(bu.Fragments) > 0 {
		var frags []string
		for _, f := range bu.Fragments {
			frags = append(frags, word(RecipeDir+"/"+f))
		}
		fl := strings.Join(frags, " ")
		fmt.Fprintf(b, "scripts/kconfig/merge_config.sh -m .config %s\n", fl)
		fmt.Fprintln(b, "make olddefconfig")
		// Every CONFIG_ line of the fragments must survive olddefconfig.
		fmt.Fprintf(b, "for f in %s; do grep '^CONFIG_' \"$f\" | while IFS= read -r l; do grep -qxF \"$l\" .config || { echo \"config line lost after olddefconfig: $l ($f)\" >&2; exit 1; }; done; done\n", fl)
	}
	fmt.Fprintf(b, "make -j\"$JOBS\"%s\n", args(bu.MakeArgs))
	fmt.Fprintln(b, "kver=$(make -s kernelrelease)")
	fmt.Fprintln(b, "install -D -m 0644 \"$(make -s image_name)\" \"$DESTDIR/usr/lib/modules/$kver/vmlinuz\"")
	fmt.Fprintln(b, "install -D -m 0644 .config \"$DESTDIR/usr/lib/modules/$kver/config\"")
	fmt.Fprintln(b, "install -D -m 0644 System.map \"$DESTDIR/usr/lib/modules/$kver/System.map\"")
	fmt.Fprintf(b, "if grep -q '^CONFIG_MODULES=y' .config; then make INSTALL_MOD_PATH=\"$DESTDIR/usr\" INSTALL_MOD_STRIP=1 modules_install%s; fi\n", args(bu.InstallArgs))
	// No headers_install: the UAPI headers are a package of their own
	// (linux-headers), and headers_install needs rsync (since Linux 5.3).
}

// implicitTools are the host programs a builder type runs beyond stage 0.
func implicitTools(typ string) []string {
	switch typ {
	case cookbook.Meson:
		return []string{"meson", "ninja", "pkg-config"}
	case cookbook.CMake:
		return []string{"cmake"}
	case cookbook.Kernel:
		return []string{"bc", "bison", "flex", "perl"}
	}
	return nil
}

// word quotes s as one shell word in which $VARIABLES still expand.
func word(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "`", "\\`").Replace(s) + `"`
}
