# ingot build script for pkg 1.0 (generated)
set -ex
cd /build/src
patch -p1 --forward --no-backup-if-mismatch -i "/build/recipe/fix build.patch"
cd src
export CFLAGS="-O2 -g \"$EXTRA\""
sed -i s/a/b/ Makefile
make -j"$JOBS" V=1
make DESTDIR="$DESTDIR" PREFIX=/usr install
cd "$DESTDIR"
rm -rf usr/share/info
