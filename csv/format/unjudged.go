package format

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/codesignval/csv/cipolicy"
)

// ErrUnjudgeable is wrapped by the error of a file of a binary kind csv
// recognises but has no handler for (Mach-O): such a file is blocked,
// with what it is, never skipped as "not a binary", since a policy that
// admits only what it judged must not let through what it could not.
var ErrUnjudgeable = errors.New("a kind of binary csv cannot judge")

// Mach-O magic numbers (Apple's <mach-o/loader.h> and <mach-o/fat.h>):
// a thin image starts with MH_MAGIC 0xfeedface (32-bit) or MH_MAGIC_64
// 0xfeedfacf in the byte order of its CPU, so 0xcefaedfe or 0xcffaedfe
// as read big-endian for the little-endian x86 and ARM images; a fat
// (universal) file with FAT_MAGIC 0xcafebabe or FAT_MAGIC_64 0xcafebabf,
// always big-endian, then nfat_arch, the count of images it holds.
const (
	machMagic    = 0xfeedface
	machMagic64  = 0xfeedfacf
	machCigam    = 0xcefaedfe
	machCigam64  = 0xcffaedfe
	fatMagic     = 0xcafebabe
	fatMagic64   = 0xcafebabf
	maxFatArches = 30
)

// Unjudgeable returns the binary kind head (a file's first bytes) starts
// as, of those csv recognises and cannot judge, or "". Today: Mach-O
// images (macOS, iOS) and fat (universal) Mach-O files.
//
// 0xcafebabe also starts every Java class file, followed by its minor
// and major version (u16 each, big-endian; major 45 for Java 1.0 up to
// 69 for Java 25, minor 0, 3, or 0xffff for preview features), where a
// fat Mach-O has nfat_arch (u32, big-endian). Read as one u32, a class
// file's is at least 45 (0x2d) and a fat file's a handful (a file per
// CPU type: there are fewer than 20), so a value under 30 is a fat
// Mach-O and anything else a class file, as file(1)'s magic (Magdir/
// cafebabe, "Cafe Babes unite!") tells them apart. A class file stays a
// file of no format.
func Unjudgeable(head []byte) string {
	if len(head) < 4 {
		return ""
	}
	switch binary.BigEndian.Uint32(head) {
	case machMagic, machCigam:
		return "Mach-O (32-bit)"
	case machMagic64, machCigam64:
		return "Mach-O (64-bit)"
	case fatMagic64:
		return "fat (universal) Mach-O"
	case fatMagic:
		if len(head) >= 8 && binary.BigEndian.Uint32(head[4:]) < maxFatArches {
			return "fat (universal) Mach-O"
		}
	}
	return ""
}

// UnjudgeableError is the error of a file of a kind Unjudgeable names:
// a *MalformedError (the file cannot be judged; reports show it so) that
// wraps ErrUnjudgeable.
func UnjudgeableError(path, kind string) *MalformedError {
	return &MalformedError{Path: path, Format: cipolicy.FormatOther, Offset: -1,
		Reason: fmt.Sprintf("a %s binary: csv cannot judge this kind of file (no rule of a policy can admit it): it is blocked, never skipped", kind),
		Err:    ErrUnjudgeable}
}
