# ingot build script for pkg 1.0 (generated)
set -ex
cd /build/src
patch -p1 --forward --no-backup-if-mismatch -i "/build/recipe/fix build.patch"
cd src
export CFLAGS="-O2 -g \"$EXTRA\""
sed -i s/a/b/ Makefile
meson setup _build --prefix=/usr --sysconfdir=/etc --localstatedir=/var --buildtype=release --wrap-mode=nodownload "--with-x=$SYSROOT/usr"
ninja -C _build -j "$JOBS" V=1
DESTDIR="$DESTDIR" meson install -C _build --no-rebuild
cd "$DESTDIR"
rm -rf usr/share/info
