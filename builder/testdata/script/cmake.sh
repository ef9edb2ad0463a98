# ingot build script for pkg 1.0 (generated)
set -ex
cd /build/src
patch -p1 --forward --no-backup-if-mismatch -i "/build/recipe/fix build.patch"
cd src
export CFLAGS="-O2 -g \"$EXTRA\""
sed -i s/a/b/ Makefile
cmake -S . -B _build -G 'Unix Makefiles' -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=Release "--with-x=$SYSROOT/usr"
cmake --build _build -j "$JOBS" V=1
DESTDIR="$DESTDIR" cmake --install _build
cd "$DESTDIR"
rm -rf usr/share/info
