# ingot build script for pkg 1.0 (generated)
set -ex
cd /build/src
patch -p1 --forward --no-backup-if-mismatch -i "/build/recipe/fix build.patch"
cd src
export CFLAGS="-O2 -g \"$EXTRA\""
sed -i s/a/b/ Makefile
export ARCH=x86_64 KBUILD_BUILD_USER=ingot KBUILD_BUILD_HOST=ingot
export KBUILD_BUILD_TIMESTAMP="$(date -u -d @"$SOURCE_DATE_EPOCH")"
make tinyconfig
scripts/kconfig/merge_config.sh -m .config /build/recipe/ingot.config
make olddefconfig
for f in /build/recipe/ingot.config; do grep '^CONFIG_' "$f" | while IFS= read -r l; do grep -qxF "$l" .config || { echo "config line lost after olddefconfig: $l ($f)" >&2; exit 1; }; done; done
make -j"$JOBS" V=1
kver=$(make -s kernelrelease)
install -D -m 0644 "$(make -s image_name)" "$DESTDIR/usr/lib/modules/$kver/vmlinuz"
install -D -m 0644 .config "$DESTDIR/usr/lib/modules/$kver/config"
install -D -m 0644 System.map "$DESTDIR/usr/lib/modules/$kver/System.map"
if grep -q '^CONFIG_MODULES=y' .config; then make INSTALL_MOD_PATH="$DESTDIR/usr" INSTALL_MOD_STRIP=1 modules_install; fi
cd "$DESTDIR"
rm -rf usr/share/info
