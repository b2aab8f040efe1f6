package testbin

import "encoding/binary"

// MachO returns a minimal Mach-O image (<mach-o/loader.h>): a
// mach_header_64 (or mach_header) in the given byte order, cputype arm64
// (or x86), filetype MH_EXECUTE, no load commands, padded to 4 KiB. file(1)
// calls it a Mach-O executable; csv cannot judge it.
func MachO(is64 bool, order binary.ByteOrder) []byte {
	magic, cpu := uint32(0xfeedface), uint32(7) // CPU_TYPE_X86
	if is64 {
		magic, cpu = 0xfeedfacf, 0x0100000c // CPU_TYPE_ARM64
	}
	b := make([]byte, 4096)
	order.PutUint32(b[0:], magic)
	order.PutUint32(b[4:], cpu)
	order.PutUint32(b[12:], 2) // MH_EXECUTE
	return b
}

// FatMachO returns a fat (universal) file (<mach-o/fat.h>: a big-endian
// fat_header with magic, fat_arch entries) holding little-endian images
// (MachO's) at 4 KiB-aligned offsets.
func FatMachO(magic uint32, images ...[]byte) []byte {
	b := make([]byte, 4096)
	binary.BigEndian.PutUint32(b[0:], magic)
	binary.BigEndian.PutUint32(b[4:], uint32(len(images)))
	for i, img := range images {
		a := b[8+20*i:]
		binary.BigEndian.PutUint32(a[0:], binary.LittleEndian.Uint32(img[4:]))
		binary.BigEndian.PutUint32(a[8:], uint32(len(b)))
		binary.BigEndian.PutUint32(a[12:], uint32(len(img)))
		binary.BigEndian.PutUint32(a[16:], 12) // 2^12
		b = append(b, img...)
	}
	return b
}

// JavaClass returns the start of a Java class file (JVM specification
// 4.1): the magic 0xcafebabe a fat Mach-O shares, then its minor and
// major version.
func JavaClass(minor, major uint16) []byte {
	b := []byte{0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 0, 0, 1}
	binary.BigEndian.PutUint16(b[4:], minor)
	binary.BigEndian.PutUint16(b[6:], major)
	return b
}
