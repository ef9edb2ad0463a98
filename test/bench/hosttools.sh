#!/usr/bin/env bash
# The reference for `make bench`: the job `ingot image` does, done with the
# upstream host tools — extract the root filesystem (as root, to keep
# owners), mkfs.erofs for /usr, veritysetup format, objcopy for the UKI,
# mkfs.vfat + mcopy for the ESP, sgdisk for the GPT, dd to assemble.
# Usage: hosttools.sh ROOTFS.tar WORKDIR
set -euo pipefail
rootfs=$1 work=$2
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
rm -rf "$work" && mkdir -p "$work/root"
tar -xf "$rootfs" -C "$work/root"
cd "$work"
kver=$(ls root/usr/lib/modules | head -1)

# /usr as EROFS (uncompressed, like ingot) and its verity tree.
mkfs.erofs -T "$SOURCE_DATE_EPOCH" usr.erofs root/usr >/dev/null
roothash=$(veritysetup format usr.erofs usr.verity | awk '/Root hash/ {print $3}')

# UKI with objcopy, the way ukify's predecessors did it.
stub=root/usr/lib/systemd/boot/efi/linuxx64.efi.stub
echo "usrhash=$roothash console=ttyS0" > cmdline
cp root/usr/lib/os-release osrel
echo "$kver" > uname
# A stand-in initrd of the same kind ingot makes (the init binary is ours).
: > init; printf 'init\n' | cpio -o -H newc 2>/dev/null | zstd -q -19 > initrd
objcopy \
  --add-section .osrel=osrel --change-section-vma .osrel=0x20000 \
  --add-section .cmdline=cmdline --change-section-vma .cmdline=0x30000 \
  --add-section .uname=uname --change-section-vma .uname=0x40000 \
  --add-section .initrd=initrd --change-section-vma .initrd=0x3000000 \
  --add-section .linux="root/boot/vmlinuz-$kver" --change-section-vma .linux=0x2000000 \
  "$stub" uki.efi

# ESP.
truncate -s 256M esp.img
mkfs.vfat -F 32 -n ESP esp.img >/dev/null
mmd -i esp.img ::EFI ::EFI/BOOT ::EFI/Linux ::loader
mcopy -i esp.img root/usr/lib/systemd/boot/efi/systemd-bootx64.efi ::EFI/BOOT/BOOTX64.EFI
mcopy -i esp.img uki.efi "::EFI/Linux/ingot_1.0.0+3-0.efi"

# GPT and assembly.
usr_mib=$(( ($(stat -c %s usr.erofs) * 3 / 2) / 1048576 + 16 ))
ver_mib=$(( $(stat -c %s usr.verity) / 1048576 + 2 ))
total_mib=$(( 1 + 256 + 2 * (usr_mib + ver_mib + 1) + 1 ))
truncate -s ${total_mib}M disk.raw
sgdisk -o \
  -n 1:0:+256M -t 1:ef00 \
  -n 2:0:+${usr_mib}M -t 2:8314 \
  -n 3:0:+${ver_mib}M -t 3:8319 \
  -n 4:0:+1M \
  -n 5:0:+${usr_mib}M -t 5:8314 \
  -n 6:0:+${ver_mib}M -t 6:8319 \
  -n 7:0:+1M disk.raw >/dev/null
dd if=esp.img of=disk.raw bs=1M seek=1 conv=notrunc,sparse status=none
dd if=usr.erofs of=disk.raw bs=1M seek=257 conv=notrunc,sparse status=none
dd if=usr.verity of=disk.raw bs=1M seek=$((257 + usr_mib)) conv=notrunc,sparse status=none
sync -f disk.raw
